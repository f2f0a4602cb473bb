"""From the microscope to a training set: ``simulate``, ``reconstruct``, ``prepare``,
``deconv`` and ``make-mask`` (registered by ``cryogen.cli``).

Each command reads files, calls a function of :mod:`cryogen.tomo`, and writes files
atomically (an existing output is kept unless ``--overwrite``).  Large tomograms are
processed in chunks: the tilt series and tomograms are memory-mapped, outputs are written
into memory-mapped MRC files.
"""

from __future__ import annotations

import logging
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cryogen.errors import InputError
from cryogen.io.star import is_star, relative_path, star_entries, update_star_column

__all__ = ["register"]

logger = logging.getLogger(__name__)
console = Console()

_MB = 1024**2
_UM_TO_A = 1e4


class Protein(str, Enum):
    dark = "dark"
    bright = "bright"


# ------------------------------------------------------------------------ shared options
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing output files (default: refuse).")
]
Device = Annotated[
    str,
    typer.Option(
        "--device", help="Compute device: auto (CUDA > MPS > CPU), cpu, cuda, cuda:N, mps."
    ),
]
PixelSizeOpt = Annotated[
    float | None,
    typer.Option(
        "--pixel-size",
        min=0.01,
        help="Pixel size in Å to use instead of the MRC header's (needed when the header says "
        "0) (default: the header's).",
        show_default=False,
    ),
]
Voltage = Annotated[
    float | None,
    typer.Option(
        "--voltage",
        min=1.0,
        help="Acceleration voltage, kV (default: the STAR file's rlnVoltage, else 300).",
        show_default=False,
    ),
]
Cs = Annotated[
    float | None,
    typer.Option(
        "--cs",
        min=0.0,
        help="Spherical aberration, mm (default: the STAR file's rlnSphericalAberration, "
        "else 2.7).",
        show_default=False,
    ),
]
AmplitudeContrast = Annotated[
    float | None,
    typer.Option(
        "--amplitude-contrast",
        min=0.0,
        max=1.0,
        help="Amplitude contrast, fraction (default: the STAR file's rlnAmplitudeContrast, "
        "else 0.07 as in IsoNet's deconvolution).",
        show_default=False,
    ),
]
OutputDir = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        help="Folder of the written volumes (default: beside each input tomogram).",
        show_default=False,
    ),
]

DEFAULT_VOLTAGE = 300.0
DEFAULT_CS = 2.7
DEFAULT_AMPLITUDE_CONTRAST = 0.07


def _defocus_angstrom(defocus_um: float, option: str = "--defocus") -> float:
    """µm from the command line -> Å, refusing values that look like Å already."""
    if not math.isfinite(defocus_um) or defocus_um < 0:
        raise InputError(f"{option} must be a defocus >= 0 in µm (underfocus), got {defocus_um:g}")
    if defocus_um > 50:
        raise InputError(
            f"{option} {defocus_um:g} µm is not a plausible defocus; give it in µm "
            f"(e.g. 3.5, not 35000 Å)"
        )
    return defocus_um * _UM_TO_A


def _device(name: str) -> Any:
    from cryogen.device import pick_device

    return pick_device(name)


# ------------------------------------------------------------------------ register
def register(app: typer.Typer) -> None:
    """Add ``simulate``, ``reconstruct``, ``prepare``, ``deconv`` and ``make-mask`` to ``app``."""
    from cryogen.cli.app import user_errors

    # -------------------------------------------------------------------- simulate
    @app.command("simulate")
    @user_errors
    def simulate_cmd(
        volume: Annotated[
            Path, typer.Argument(help="Volume to image (MRC), beam along z.", show_default=False)
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="Tilt series to write (MRC, images (n_tilts, y, x)); the angles go to "
                "the same name with .tlt.",
                show_default=False,
            ),
        ],
        tilt_min: Annotated[
            float, typer.Option("--tilt-min", help="First tilt angle, degrees.")
        ] = -60.0,
        tilt_max: Annotated[
            float,
            typer.Option(
                "--tilt-max", help="Last tilt angle, degrees (the last step may be shorter)."
            ),
        ] = 60.0,
        tilt_step: Annotated[
            float, typer.Option("--tilt-step", min=0.01, help="Tilt increment, degrees.")
        ] = 3.0,
        dose: Annotated[
            float | None,
            typer.Option(
                "--dose",
                min=1e-6,
                help="Total electron dose of the series, e⁻/Å², split evenly between the "
                "tilts: adds Poisson shot noise (image contrast 10%) (default: no shot noise).",
                show_default=False,
            ),
        ] = None,
        snr: Annotated[
            float | None,
            typer.Option(
                "--snr",
                min=1e-6,
                help="Add Gaussian noise: variance of the noise-free series over this value "
                "(default: no Gaussian noise).",
                show_default=False,
            ),
        ] = None,
        defocus: Annotated[
            float | None,
            typer.Option(
                "--defocus",
                min=0.0,
                help="Apply the CTF of this defocus, µm underfocus (default: no CTF).",
                show_default=False,
            ),
        ] = None,
        voltage: Annotated[
            float, typer.Option("--voltage", min=1.0, help="Acceleration voltage, kV (CTF).")
        ] = DEFAULT_VOLTAGE,
        cs: Annotated[
            float, typer.Option("--cs", min=0.0, help="Spherical aberration, mm (CTF).")
        ] = DEFAULT_CS,
        amplitude_contrast: Annotated[
            float,
            typer.Option(
                "--amplitude-contrast", min=0.0, max=1.0, help="Amplitude contrast (CTF)."
            ),
        ] = DEFAULT_AMPLITUDE_CONTRAST,
        seed: Annotated[int, typer.Option("--seed", help="Random seed of the noise.")] = 0,
        pixel_size: PixelSizeOpt = None,
        device: Device = "auto",
        overwrite: Overwrite = False,
    ) -> None:
        """Project a volume over a tilt scheme into an IMOD-style tilt series (TS.mrc + TS.tlt),
        optionally with the CTF and noise: a missing wedge made the way a microscope makes it."""
        import torch

        from cryogen.io import check_output_path, derived_path, read_volume, write_tlt, write_volume
        from cryogen.tomo import CTFParams, simulate_tilt_series, tilt_angles

        tlt = derived_path(output, "", ".tlt")
        check_output_path(output, overwrite)
        check_output_path(tlt, overwrite)
        if not (-90.0 <= tilt_min < tilt_max <= 90.0):
            raise InputError(
                f"the tilt range must satisfy -90 <= --tilt-min < --tilt-max <= 90, "
                f"got [{tilt_min:g}, {tilt_max:g}]"
            )
        vol = read_volume(volume, pixel_size=pixel_size)
        if min(vol.shape[0], vol.shape[2]) < 2:
            raise InputError(f"{volume}: shape {vol.shape} is too thin to project")
        angles = tilt_angles(tilt_min, tilt_max, tilt_step)
        params = None
        if defocus is not None:
            params = CTFParams(
                defocus=_defocus_angstrom(defocus),
                voltage=voltage,
                cs=cs,
                amplitude_contrast=amplitude_contrast,
            )
        dev = _device(device)
        x = torch.from_numpy(vol.load()).to(dev)
        with console.status(f"projecting {len(angles)} tilts"):
            ts = simulate_tilt_series(
                x,
                angles,
                pixel_size=vol.voxel_size,
                ctf_params=params,
                dose=dose,
                snr=snr,
                seed=seed,
            )
        write_volume(output, ts.cpu().numpy(), voxel_size=vol.voxel_size, overwrite=overwrite)
        write_tlt(tlt, angles, overwrite=overwrite)
        extras = []
        if params is not None:
            extras.append(f"CTF at {defocus:g} µm")
        if dose is not None:
            extras.append(f"dose {dose:g} e/Å²")
        if snr is not None:
            extras.append(f"SNR {snr:g}")
        note = f" ({', '.join(extras)})" if extras else ""
        console.print(
            f"wrote {output} ({len(angles)} tilts {angles[0]:g}..{angles[-1]:g} deg, images "
            f"{ts.shape[1]}x{ts.shape[2]}){note} and {tlt}"
        )

    # -------------------------------------------------------------------- reconstruct
    @app.command("reconstruct")
    @user_errors
    def reconstruct_cmd(
        tilt_series: Annotated[
            Path,
            typer.Argument(
                help="Aligned tilt series (MRC stack .mrc/.st/.ali, images (n_tilts, y, x), "
                "tilt axis along the image y).",
                show_default=False,
            ),
        ],
        tlt: Annotated[
            Path | None,
            typer.Option(
                "--tlt",
                help="IMOD .tlt file, one angle (degrees) per image (default: the tilt "
                "series' name with .tlt).",
                show_default=False,
            ),
        ] = None,
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                help="Tomogram to write (MRC) (default: the tilt series' name with _rec.mrc).",
                show_default=False,
            ),
        ] = None,
        thickness: Annotated[
            int | None,
            typer.Option(
                "--thickness",
                min=1,
                help="Tomogram thickness along the beam in pixels of the input tilt series "
                "(divided by the binning) (default: the image width, a cube).",
                show_default=False,
            ),
        ] = None,
        bin_factor: Annotated[
            float,
            typer.Option(
                "--bin",
                min=1.0,
                help="Bin the images by this factor (Fourier cropping) before reconstructing.",
            ),
        ] = 1.0,
        target_pixel_size: Annotated[
            float | None,
            typer.Option(
                "--target-pixel-size",
                min=0.01,
                help="Bin to this pixel size in Å instead of giving --bin (default: use --bin).",
                show_default=False,
            ),
        ] = None,
        chunk_mb: Annotated[
            int,
            typer.Option(
                "--chunk-mb",
                min=1,
                help="Working memory of one chunk of rows along the tilt axis, MiB.",
            ),
        ] = 256,
        pixel_size: PixelSizeOpt = None,
        device: Device = "auto",
        overwrite: Overwrite = False,
    ) -> None:
        """Weighted back-projection (radial ramp weighting) of an aligned tilt series into a
        tomogram, chunked along the tilt axis so memory stays bounded."""
        import numpy as np
        import torch

        from cryogen.io import (
            check_output_path,
            create_volume_memmap,
            derived_path,
            read_tlt,
            read_volume,
        )
        from cryogen.tomo import bin_factor_for, binned_shape, fourier_crop, reconstruct_wbp

        out = output if output is not None else derived_path(tilt_series, "_rec")
        check_output_path(out, overwrite)
        tlt_path = tlt if tlt is not None else derived_path(tilt_series, "", ".tlt")
        if tlt is None and not tlt_path.exists():
            raise InputError(f"no --tlt given and {tlt_path} does not exist")
        angles = read_tlt(tlt_path)
        ts = read_volume(tilt_series, pixel_size=pixel_size)
        n_tilts, ny, nx = ts.shape
        if len(angles) != n_tilts:
            raise InputError(
                f"{tlt_path}: {len(angles)} tilt angles for the {n_tilts} images of {tilt_series}"
            )
        if target_pixel_size is not None:
            if bin_factor != 1.0:
                raise InputError("give either --bin or --target-pixel-size, not both")
            try:
                bin_factor = bin_factor_for(ts.voxel_size, target_pixel_size)
            except ValueError as err:
                raise InputError(str(err)) from None
        dev = _device(device)
        images: Any = ts.data
        voxel = ts.voxel_size
        if bin_factor > 1.0:
            my, mx = binned_shape((ny, nx), bin_factor)
            binned = np.empty((n_tilts, my, mx), dtype=np.float32)
            for i in range(n_tilts):
                img = torch.from_numpy(np.array(ts.data[i], dtype=np.float32)).to(dev)
                binned[i] = fourier_crop(img, (my, mx)).cpu().numpy()
            images, voxel = binned, ts.voxel_size * nx / mx
            ny, nx = my, mx
        nz = nx if thickness is None else max(1, int(round(thickness / bin_factor)))
        if nx < 2:
            raise InputError(f"{tilt_series}: images of width {nx} cannot be reconstructed")
        with (
            console.status(f"reconstructing {nz}x{ny}x{nx} from {n_tilts} tilts"),
            create_volume_memmap(out, (nz, ny, nx), voxel_size=voxel, overwrite=overwrite) as mm,
        ):
            reconstruct_wbp(
                images, angles, thickness=nz, out=mm, chunk_bytes=chunk_mb * _MB, device=dev
            )
        console.print(
            f"wrote {out}  shape (z, y, x) {(nz, ny, nx)}  voxel size {voxel:.4g} Å  "
            f"({n_tilts} tilts {angles.min():g}..{angles.max():g} deg)"
        )

    # -------------------------------------------------------------------- prepare
    @app.command("prepare")
    @user_errors
    def prepare_cmd(
        inputs: Annotated[
            list[Path],
            typer.Argument(
                help="Tomograms (MRC files) and/or folders holding them (.mrc, .rec, ...).",
                show_default=False,
            ),
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="STAR file to write (RELION-5 / IsoNet2 column names).",
                show_default=False,
            ),
        ],
        tilt_min: Annotated[
            float, typer.Option("--tilt-min", help="Lowest tilt angle, degrees (rlnTiltMin).")
        ] = -60.0,
        tilt_max: Annotated[
            float, typer.Option("--tilt-max", help="Highest tilt angle, degrees (rlnTiltMax).")
        ] = 60.0,
        defocus: Annotated[
            float | None,
            typer.Option(
                "--defocus",
                min=0.0,
                help="Defocus of the zero tilt, µm underfocus, for every tomogram (written in "
                "Å to rlnDefocus; edit the STAR for per-tomogram values) (default: None, "
                "needed later by deconv).",
                show_default=False,
            ),
        ] = None,
        voltage: Annotated[
            float, typer.Option("--voltage", min=1.0, help="Acceleration voltage, kV.")
        ] = DEFAULT_VOLTAGE,
        cs: Annotated[
            float, typer.Option("--cs", min=0.0, help="Spherical aberration, mm.")
        ] = DEFAULT_CS,
        amplitude_contrast: Annotated[
            float,
            typer.Option("--amplitude-contrast", min=0.0, max=1.0, help="Amplitude contrast."),
        ] = DEFAULT_AMPLITUDE_CONTRAST,
        target_pixel_size: Annotated[
            float | None,
            typer.Option(
                "--target-pixel-size",
                min=0.01,
                help="Bin every tomogram to this pixel size in Å (Fourier cropping), write "
                "the binned copies (NAME_<size>A.mrc) and list those (default: no binning).",
                show_default=False,
            ),
        ] = None,
        output_dir: OutputDir = None,
        pixel_size: PixelSizeOpt = None,
        overwrite: Overwrite = False,
    ) -> None:
        """List tomograms in a STAR file (one row each, pixel size from the MRC header),
        optionally binned to a target pixel size."""
        import pandas as pd

        from cryogen.io import (
            AMPLITUDE_CONTRAST,
            CS,
            DECONV_TOMO_NAME,
            DEFOCUS,
            MASK_NAME,
            MRC_EXTENSIONS,
            PIXEL_SIZE,
            TILT_MAX,
            TILT_MIN,
            TOMO_NAME,
            VOLTAGE,
            check_output_path,
            derived_path,
            read_volume,
            write_star,
            write_volume,
        )
        from cryogen.tomo import bin_factor_for, bin_volume

        check_output_path(output, overwrite)
        if not (-90.0 <= tilt_min < tilt_max <= 90.0):
            raise InputError(
                f"the tilt range must satisfy -90 <= --tilt-min < --tilt-max <= 90, "
                f"got [{tilt_min:g}, {tilt_max:g}]"
            )
        defocus_a = None if defocus is None else _defocus_angstrom(defocus)
        files: list[Path] = []
        for item in inputs:
            if item.is_dir():
                found = sorted(
                    p
                    for p in item.iterdir()
                    if p.is_file()
                    and p.suffix.lower() in MRC_EXTENSIONS
                    and not p.name.startswith(".")
                )
                if not found:
                    raise InputError(
                        f"{item}: no tomograms in this folder (looked for "
                        f"{', '.join(MRC_EXTENSIONS)})"
                    )
                files += found
            elif item.exists():
                files.append(item)
            else:
                raise InputError(f"{item}: file not found")
        seen: set[Path] = set()
        unique = []
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                unique.append(f)
        out_dir = output_dir if output_dir is not None else output.parent
        if target_pixel_size is not None and not out_dir.is_dir():
            raise InputError(f"--output-dir {out_dir} is not an existing folder")
        rows = []
        for i, f in enumerate(unique, start=1):
            vol = read_volume(f, pixel_size=pixel_size, check_values=False)
            path, voxel = f, vol.voxel_size
            if target_pixel_size is not None:
                try:
                    factor = bin_factor_for(vol.voxel_size, target_pixel_size)
                except ValueError as err:
                    raise InputError(f"{f}: {err}") from None
                binned_path = derived_path(f, f"_{target_pixel_size:g}A", out_dir=out_dir)
                with console.status(f"binning {f.name} by {factor:.3g}"):
                    data, actual = bin_volume(vol.data, factor)
                voxel = vol.voxel_size * actual
                write_volume(binned_path, data, voxel_size=voxel, overwrite=overwrite)
                console.print(f"wrote {binned_path}  shape {data.shape}  voxel {voxel:.4g} Å")
                path = binned_path
            rows.append(
                {
                    "rlnIndex": i,
                    TOMO_NAME: relative_path(path, output.parent),
                    PIXEL_SIZE: float(voxel),
                    DEFOCUS: defocus_a,
                    VOLTAGE: float(voltage),
                    CS: float(cs),
                    AMPLITUDE_CONTRAST: float(amplitude_contrast),
                    TILT_MIN: float(tilt_min),
                    TILT_MAX: float(tilt_max),
                    DECONV_TOMO_NAME: None,
                    MASK_NAME: None,
                }
            )
        frame = pd.DataFrame(rows)
        write_star(output, frame, overwrite=overwrite)
        console.print(f"wrote {output} ({len(rows)} tomograms)")

    # -------------------------------------------------------------------- deconv
    @app.command("deconv")
    @user_errors
    def deconv_cmd(
        input: Annotated[
            Path,
            typer.Argument(
                help="STAR file of tomograms (rlnTomoName, rlnDefocus, ...) or one MRC tomogram.",
                show_default=False,
            ),
        ],
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                help="For a STAR input: the STAR to write (default: update the input STAR in "
                "place). For an MRC input: the deconvolved tomogram (default: NAME_deconv.mrc).",
                show_default=False,
            ),
        ] = None,
        snrfalloff: Annotated[
            float,
            typer.Option(
                "--snrfalloff",
                min=0.0,
                help="How fast the assumed SNR falls with frequency (IsoNet's snrfalloff); "
                "larger removes more high frequencies.",
            ),
        ] = 1.0,
        deconvstrength: Annotated[
            float,
            typer.Option(
                "--deconvstrength",
                help="log10 scale of the assumed SNR (IsoNet's deconvstrength); larger "
                "restores more low-frequency contrast.",
            ),
        ] = 1.0,
        highpassnyquist: Annotated[
            float,
            typer.Option(
                "--highpassnyquist",
                min=1e-6,
                max=1.0,
                help="Extent of the very-low-frequency high-pass, fraction of Nyquist.",
            ),
        ] = 0.02,
        defocus: Annotated[
            float | None,
            typer.Option(
                "--defocus",
                min=0.0,
                help="Defocus, µm underfocus (default: the STAR file's rlnDefocus; required "
                "for an MRC input).",
                show_default=False,
            ),
        ] = None,
        voltage: Voltage = None,
        cs: Cs = None,
        amplitude_contrast: AmplitudeContrast = None,
        phase_shift: Annotated[
            float, typer.Option("--phase-shift", help="Phase-plate phase shift, degrees.")
        ] = 0.0,
        phaseflipped: Annotated[
            bool,
            typer.Option(
                "--phaseflipped/--not-phaseflipped",
                help="The tomograms are already phase-flipped (use |CTF|).",
            ),
        ] = False,
        chunk_size: Annotated[
            int,
            typer.Option(
                "--chunk-size",
                min=16,
                help="Edge of the cubic chunks processed one at a time, voxels.",
            ),
        ] = 200,
        overlap: Annotated[
            float,
            typer.Option(
                "--overlap",
                min=0.0,
                max=0.9,
                help="Fraction of a chunk shared with its neighbours (IsoNet's overlap_rate).",
            ),
        ] = 0.25,
        output_dir: OutputDir = None,
        pixel_size: PixelSizeOpt = None,
        device: Device = "auto",
        overwrite: Overwrite = False,
    ) -> None:
        """IsoNet's CTF deconvolution (Wiener-like filter), chunked for large tomograms;
        records rlnDeconvTomoName in the STAR file."""
        from cryogen.io import DECONV_TOMO_NAME, check_output_path, derived_path
        from cryogen.tomo import CTFParams

        dev = _device(device)
        filt = {
            "snrfalloff": snrfalloff,
            "deconvstrength": deconvstrength,
            "highpassnyquist": highpassnyquist,
            "phaseflipped": phaseflipped,
        }
        if not is_star(input):
            if defocus is None:
                raise InputError(f"{input}: give the defocus with --defocus (µm)")
            params = CTFParams(
                defocus=_defocus_angstrom(defocus),
                voltage=voltage if voltage is not None else DEFAULT_VOLTAGE,
                cs=cs if cs is not None else DEFAULT_CS,
                amplitude_contrast=amplitude_contrast
                if amplitude_contrast is not None
                else DEFAULT_AMPLITUDE_CONTRAST,
                phase_shift=phase_shift,
            )
            out = (
                output if output is not None else derived_path(input, "_deconv", out_dir=output_dir)
            )
            check_output_path(out, overwrite)
            _deconv_file(input, out, params, filt, chunk_size, overlap, pixel_size, dev, overwrite)
            return
        entries = star_entries(input)
        if output is not None:
            check_output_path(output, overwrite)
        jobs = []
        for e in entries:
            where = f"{input}, row {e.row} ({e.name})"
            if defocus is not None:
                df = _defocus_angstrom(defocus)
            elif e.defocus is not None:
                df = float(e.defocus)
            else:
                raise InputError(
                    f"{where}: no rlnDefocus; fill the column (Å) or give --defocus (µm)"
                )
            if not df > 0:
                raise InputError(
                    f"{where}: rlnDefocus is {df:g} Å; a deconvolution needs the defocus "
                    "(phase-plate or CTF-corrected data need no deconvolution)"
                )
            try:
                params = CTFParams(
                    defocus=df,
                    voltage=_pick(voltage, e.voltage, DEFAULT_VOLTAGE),
                    cs=_pick(cs, e.cs, DEFAULT_CS),
                    amplitude_contrast=_pick(
                        amplitude_contrast, e.amplitude_contrast, DEFAULT_AMPLITUDE_CONTRAST
                    ),
                    phase_shift=phase_shift,
                )
            except ValueError as err:
                raise InputError(f"{where}: {err}") from None
            out = derived_path(e.path, "_deconv", out_dir=output_dir)
            check_output_path(out, overwrite)
            jobs.append((e, params, out))
        done: dict[int, str] = {}
        for e, params, out in jobs:
            px = pixel_size if pixel_size is not None else e.pixel_size
            _deconv_file(e.path, out, params, filt, chunk_size, overlap, px, dev, overwrite)
            done[e.row - 1] = relative_path(out, (output or input).parent)
        star_out = update_star_column(input, DECONV_TOMO_NAME, done, output, overwrite)
        console.print(f"recorded {DECONV_TOMO_NAME} in {star_out}")

    # -------------------------------------------------------------------- make-mask
    @app.command("make-mask")
    @user_errors
    def make_mask_cmd(
        input: Annotated[
            Path,
            typer.Argument(help="STAR file of tomograms or one MRC tomogram.", show_default=False),
        ],
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                help="For a STAR input: the STAR to write (default: update the input STAR in "
                "place). For an MRC input: the mask (default: NAME_mask.mrc).",
                show_default=False,
            ),
        ] = None,
        density_percentage: Annotated[
            float,
            typer.Option(
                "--density-percentage",
                min=0.0,
                max=100.0,
                help="Percentage of voxels kept by the local-density criterion (100: off).",
            ),
        ] = 50.0,
        std_percentage: Annotated[
            float,
            typer.Option(
                "--std-percentage",
                min=0.0,
                max=100.0,
                help="Percentage of voxels kept by the local-standard-deviation criterion "
                "(100: off).",
            ),
        ] = 50.0,
        z_crop: Annotated[
            float,
            typer.Option(
                "--z-crop",
                min=0.0,
                max=0.99,
                help="Fraction of the slices along z removed, half at the top and half at the "
                "bottom (0.2: 10% each, as IsoNet2).",
            ),
        ] = 0.2,
        patch_size: Annotated[
            int,
            typer.Option(
                "--patch-size",
                min=1,
                help="Half-width of the local filters, voxels of the 2x-binned tomogram.",
            ),
        ] = 4,
        protein: Annotated[
            Protein,
            typer.Option(
                "--protein",
                help="How protein looks: dark (low values: cryo-ET tomograms, IsoNet) or "
                "bright (high values: cryogen phantoms and simulations).",
            ),
        ] = Protein.dark,
        use_deconv: Annotated[
            bool,
            typer.Option(
                "--use-deconv/--no-use-deconv",
                help="With a STAR input, compute the mask on rlnDeconvTomoName when it exists "
                "(as IsoNet does), else on rlnTomoName.",
            ),
        ] = True,
        output_dir: OutputDir = None,
        device: Device = "auto",
        overwrite: Overwrite = False,
    ) -> None:
        """IsoNet-style sampling mask (local density and local standard deviation
        percentages, z-crop); records rlnMaskName in the STAR file."""
        from cryogen.io import MASK_NAME, check_output_path, derived_path

        dev = _device(device)
        opts = {
            "density_percentage": density_percentage,
            "std_percentage": std_percentage,
            "z_crop": z_crop,
            "patch_size": patch_size,
            "protein": protein.value,
        }
        if not is_star(input):
            out = output if output is not None else derived_path(input, "_mask", out_dir=output_dir)
            check_output_path(out, overwrite)
            _mask_file(input, out, opts, dev, overwrite)
            return
        entries = star_entries(input)
        if output is not None:
            check_output_path(output, overwrite)
        jobs = []
        for e in entries:
            src = e.path
            if use_deconv and e.deconv_path is not None:
                if e.deconv_path.is_file():
                    src = e.deconv_path
                else:
                    logger.warning(
                        "%s, row %d: rlnDeconvTomoName %s does not exist; using rlnTomoName",
                        input,
                        e.row,
                        e.deconv_path,
                    )
            out = derived_path(e.path, "_mask", out_dir=output_dir)
            check_output_path(out, overwrite)
            jobs.append((e, src, out))
        done: dict[int, str] = {}
        for e, src, out in jobs:
            _mask_file(src, out, opts, dev, overwrite)
            done[e.row - 1] = relative_path(out, (output or input).parent)
        star_out = update_star_column(input, MASK_NAME, done, output, overwrite)
        console.print(f"recorded {MASK_NAME} in {star_out}")


def _pick(cli: float | None, star: float | None, default: float) -> float:
    if cli is not None:
        return float(cli)
    if star is not None:
        return float(star)
    return default


def _deconv_file(
    src: Path,
    out: Path,
    params: Any,
    filt: dict[str, Any],
    chunk_size: int,
    overlap: float,
    pixel_size: float | None,
    device: Any,
    overwrite: bool,
) -> None:
    from cryogen.io import create_volume_memmap, read_volume
    from cryogen.tomo import deconvolve_chunked

    vol = read_volume(src, pixel_size=pixel_size)
    with (
        console.status(f"deconvolving {src.name} (defocus {params.defocus / _UM_TO_A:.3g} µm)"),
        create_volume_memmap(
            out, vol.shape, voxel_size=vol.voxel_size, origin=vol.origin, overwrite=overwrite
        ) as mm,
    ):
        deconvolve_chunked(
            vol.data,
            mm,
            vol.voxel_size,
            params,
            chunk_size=chunk_size,
            overlap=overlap,
            device=device,
            **filt,
        )
    console.print(f"wrote {out}")


def _mask_file(src: Path, out: Path, opts: dict[str, Any], device: Any, overwrite: bool) -> None:
    from cryogen.io import read_volume, write_volume
    from cryogen.tomo import make_mask

    vol = read_volume(src)
    with console.status(f"making the mask of {src.name}"):
        mask = make_mask(vol.data, device=device, **opts)
    cover = float(mask.float().mean())
    write_volume(
        out, mask.cpu().numpy(), voxel_size=vol.voxel_size, origin=vol.origin, overwrite=overwrite
    )
    console.print(f"wrote {out}  (covers {cover:.1%} of the tomogram)")
    if cover == 0:
        logger.warning("%s: the mask is empty; loosen --density-percentage/--std-percentage", out)
