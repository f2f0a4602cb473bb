"""Reading and writing the files users bring: MRC volumes, IMOD ``.tlt``, STAR lists.

Every reader checks its input and raises ``InputError`` with one line naming the file and
the problem; every writer writes to a temporary file beside the output and renames it when
complete, refusing to replace an existing file unless ``overwrite=True`` (``OutputError``).
"""

from cryogen.io.files import (
    atomic_output,
    check_output_path,
    derived_path,
    stem_of,
    write_json,
    write_text_atomic,
)
from cryogen.io.inputs import TomogramSource, tomogram_sources
from cryogen.io.mrc import (
    MRC_EXTENSIONS,
    Volume,
    create_volume_memmap,
    read_volume,
    rotate_beam_y_to_z,
    rotate_beam_z_to_y,
    write_volume,
)
from cryogen.io.star import (
    AMPLITUDE_CONTRAST,
    CORRECTED_TOMO_NAME,
    CS,
    DECONV_TOMO_NAME,
    DEFOCUS,
    HALF1,
    HALF2,
    MASK_NAME,
    PIXEL_SIZE,
    RECONSTRUCTED_TOMOGRAM,
    TILT_MAX,
    TILT_MIN,
    TOMO_NAME,
    VOLTAGE,
    TomogramEntry,
    is_star,
    read_star,
    rebase_paths,
    relative_path,
    star_entries,
    tomograms_from_star,
    update_star_column,
    write_star,
)
from cryogen.io.tlt import read_tlt, write_tlt

__all__ = [
    "AMPLITUDE_CONTRAST",
    "CORRECTED_TOMO_NAME",
    "CS",
    "DECONV_TOMO_NAME",
    "DEFOCUS",
    "HALF1",
    "HALF2",
    "MASK_NAME",
    "MRC_EXTENSIONS",
    "PIXEL_SIZE",
    "RECONSTRUCTED_TOMOGRAM",
    "TILT_MAX",
    "TILT_MIN",
    "TOMO_NAME",
    "VOLTAGE",
    "TomogramEntry",
    "TomogramSource",
    "Volume",
    "atomic_output",
    "check_output_path",
    "create_volume_memmap",
    "derived_path",
    "is_star",
    "read_star",
    "rebase_paths",
    "relative_path",
    "read_tlt",
    "read_volume",
    "rotate_beam_y_to_z",
    "rotate_beam_z_to_y",
    "stem_of",
    "star_entries",
    "tomogram_sources",
    "tomograms_from_star",
    "update_star_column",
    "write_star",
    "write_json",
    "write_text_atomic",
    "write_tlt",
    "write_volume",
]
