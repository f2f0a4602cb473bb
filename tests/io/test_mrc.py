"""MRC volumes: round trips, header statistics, atomic writes, bad input, beam axis."""

from __future__ import annotations

import logging
import mmap
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch

import cryogen.io.mrc as mrc_module
import cryogen.io.mrc_checks as mrc_checks
from cryogen.errors import InputError, OutputError
from cryogen.io import (
    Volume,
    check_output_path,
    create_volume_memmap,
    derived_path,
    read_volume,
    rotate_beam_y_to_z,
    rotate_beam_z_to_y,
    stem_of,
    write_volume,
)


# ------------------------------------------------------------------------------ helpers
def rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def mrc_write(path, data, voxel_size=2.5, origin=None):
    """Write with mrcfile directly (independent of the code under test)."""
    with warnings.catch_warnings(), mrcfile.new(path, overwrite=True) as m:
        warnings.simplefilter("ignore")  # mrcfile warns about NaN/Inf in the bad inputs
        m.set_data(np.asarray(data))
        m.voxel_size = voxel_size
        if origin is not None:
            m.header.origin.x, m.header.origin.y, m.header.origin.z = origin
    return path


def memmap_backed(a):
    obj = a
    while obj is not None:
        if isinstance(obj, (np.memmap, mmap.mmap)):
            return True
        obj = getattr(obj, "base", None)
    return False


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("voxel", [1.234, 7.5, 2.62])
@pytest.mark.parametrize("mmap_read", [True, False])
def test_round_trip_is_exact(tmp_path, voxel, mmap_read):
    data = rand((12, 17, 23))
    origin = (10.5, -3.25, 100.0)
    out = write_volume(tmp_path / "v.mrc", data, voxel_size=voxel, origin=origin)
    assert out == tmp_path / "v.mrc"
    vol = read_volume(out, mmap=mmap_read)
    assert vol.data.dtype == np.float32 and vol.data.shape == (12, 17, 23)
    np.testing.assert_array_equal(np.asarray(vol.data), data)
    assert vol.voxel_size == voxel
    assert vol.origin == origin
    assert vol.path == out
    # the header agrees for any other MRC reader
    with mrcfile.open(out) as m:
        assert m.data.shape == (12, 17, 23)
        assert float(m.voxel_size.z) == pytest.approx(voxel, rel=1e-6)
        assert m.header.ispg == 1  # a volume, not an image stack


def test_write_converts_torch_and_float64_and_float16(tmp_path):
    t = torch.from_numpy(rand((8, 9, 10)).astype(np.float64))
    write_volume(tmp_path / "t.mrc", t, voxel_size=3.0)
    np.testing.assert_array_equal(
        read_volume(tmp_path / "t.mrc").data, t.numpy().astype(np.float32)
    )
    write_volume(tmp_path / "h.mrc", t, voxel_size=3.0, dtype="float16")
    vol = read_volume(tmp_path / "h.mrc")
    assert vol.data.dtype == np.float16
    np.testing.assert_array_equal(vol.data, t.numpy().astype(np.float16))
    with pytest.raises(ValueError, match="shape"):
        write_volume(tmp_path / "2d.mrc", rand((8, 8)), voxel_size=1.0)
    with pytest.raises(ValueError, match="voxel_size"):
        write_volume(tmp_path / "v0.mrc", rand((4, 4, 4)), voxel_size=0.0)
    assert not (tmp_path / "2d.mrc").exists() and not (tmp_path / "v0.mrc").exists()


def test_header_stats_match_numpy_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(mrc_checks, "CHUNK_ELEMENTS", 50)  # many chunks of ~one section
    data = (rand((11, 7, 6)) * 3.0 + 1000.0).astype(np.float32)  # large mean, small spread
    write_volume(tmp_path / "s.mrc", data, voxel_size=1.0)
    d64 = data.astype(np.float64)
    with mrcfile.open(tmp_path / "s.mrc") as m:
        h = m.header
        assert float(h.dmin) == pytest.approx(d64.min(), rel=1e-7)
        assert float(h.dmax) == pytest.approx(d64.max(), rel=1e-7)
        assert float(h.dmean) == pytest.approx(d64.mean(), rel=1e-7)
        assert float(h.rms) == pytest.approx(d64.std(), rel=1e-5)


def test_memmap_reading(tmp_path):
    data = rand((6, 7, 8))
    mrc_write(tmp_path / "a.mrc", data)
    vol = read_volume(tmp_path / "a.mrc")
    assert isinstance(vol.data, np.memmap) and memmap_backed(vol.data)
    assert not vol.data.flags.writeable  # never modifies the user's file
    np.testing.assert_array_equal(vol.data, data)
    loaded = vol.load()
    assert not memmap_backed(loaded) and loaded.flags.c_contiguous and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, data)
    in_memory = read_volume(tmp_path / "a.mrc", mmap=False)
    assert not memmap_backed(in_memory.data) and in_memory.data.flags.writeable
    np.testing.assert_array_equal(in_memory.data, data)


def test_create_volume_memmap_streams_and_renames(tmp_path):
    data = rand((9, 8, 7))
    out = tmp_path / "stream.mrc"
    with create_volume_memmap(out, data.shape, voxel_size=4.0, origin=(1.0, 2.0, 3.0)) as arr:
        assert memmap_backed(arr) and arr.shape == (9, 8, 7) and arr.dtype == np.float32
        assert not out.exists()  # only the hidden temporary file exists while writing
        for z in range(data.shape[0]):
            arr[z] = data[z]
    assert listing(tmp_path) == ["stream.mrc"]
    vol = read_volume(out)
    np.testing.assert_array_equal(vol.data, data)
    assert (vol.voxel_size, vol.origin) == (4.0, (1.0, 2.0, 3.0))
    with mrcfile.open(out) as m:
        assert float(m.header.dmax) == pytest.approx(float(data.max()))


# ------------------------------------------------------------------------------ atomic writes
def test_existing_output_is_refused_unless_overwrite(tmp_path, one_line_error):
    out = tmp_path / "TS_01.bin4_corrected.mrc"
    write_volume(out, rand((4, 5, 6), 1), voxel_size=2.0)
    with pytest.raises(OutputError) as e:
        write_volume(out, rand((4, 5, 6), 2), voxel_size=2.0)
    one_line_error(e, out.name, "already exists")
    assert e.value.advice == "overwrite"
    np.testing.assert_array_equal(read_volume(out).data, rand((4, 5, 6), 1))
    with pytest.raises(OutputError, match="already exists"):
        check_output_path(out, False)
    assert check_output_path(out, True) == out
    write_volume(out, rand((4, 5, 6), 2), voxel_size=2.0, overwrite=True)
    np.testing.assert_array_equal(read_volume(out).data, rand((4, 5, 6), 2))
    assert listing(tmp_path) == [out.name]


def failing_stats(data):
    raise RuntimeError("simulated crash in the middle of the write")


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(mrc_module, "header_stats", failing_stats)
    with pytest.raises(RuntimeError, match="simulated"):
        write_volume(tmp_path / "out.mrc", rand((8, 8, 8)), voxel_size=1.0)
    assert listing(tmp_path) == []  # neither the output nor a temporary file


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "out.mrc"
    write_volume(out, rand((8, 8, 8), 1), voxel_size=1.0)
    before = out.read_bytes()
    monkeypatch.setattr(mrc_module, "header_stats", failing_stats)
    with pytest.raises(RuntimeError):
        write_volume(out, rand((8, 8, 8), 2), voxel_size=1.0, overwrite=True)
    assert listing(tmp_path) == ["out.mrc"] and out.read_bytes() == before


def test_exception_inside_memmap_block_deletes_the_temporary_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with create_volume_memmap(tmp_path / "s.mrc", (4, 4, 4), voxel_size=1.0) as arr:
            arr[0] = 1.0
            raise KeyboardInterrupt
    assert listing(tmp_path) == []


# ------------------------------------------------------------------------------ beam axis
def test_beam_axis_y_is_a_proper_rotation_to_z(tmp_path):
    nz, ny, nx = 13, 5, 9  # thickness (beam) along the file's y
    data = rand((nz, ny, nx))
    data[2, 0, 7] = 50.0  # a point feature at file (z=2, y=0, x=7)
    mrc_write(tmp_path / "imod.rec", data, origin=(1.0, 2.0, 3.0))
    vol = read_volume(tmp_path / "imod.rec", beam_axis="y")
    assert vol.data.shape == (ny, nz, nx)  # the thickness is now along z
    assert memmap_backed(vol.data)  # still a view of the memory map
    # -90 degrees about x: new y = old z, new z = -old y, so (2, 0, 7) -> (ny - 1, 2, 7)
    assert np.unravel_index(np.argmax(vol.data), vol.data.shape) == (ny - 1, 2, 7)
    np.testing.assert_array_equal(rotate_beam_z_to_y(vol.data), data)  # inverse
    np.testing.assert_array_equal(vol.load(), np.ascontiguousarray(rotate_beam_y_to_z(data)))
    assert vol.origin == (1.0, 3.0, 2.0)  # y and z follow the axes
    # torch and numpy agree, and the rotated volume goes into torch through load()
    t = torch.from_numpy(data)
    assert torch.equal(rotate_beam_y_to_z(t), torch.from_numpy(vol.load()))
    assert torch.equal(rotate_beam_z_to_y(rotate_beam_y_to_z(t)), t)


def test_beam_rotation_keeps_handedness():
    # unit steps along x, y, z from the centre of an odd-sized volume, and where they land
    n = 5
    c = n // 2
    cols = []
    for step in ((0, 0, 1), (0, 1, 0), (1, 0, 0)):  # x, y, z steps in (z, y, x) indexing
        a = np.zeros((n, n, n), np.float32)
        a[c + step[0], c + step[1], c + step[2]] = 1.0
        z, y, x = np.unravel_index(np.argmax(rotate_beam_y_to_z(a)), a.shape)
        cols.append((x - c, y - c, z - c))
    rot = np.array(cols, dtype=float).T  # columns: images of e_x, e_y, e_z in (x, y, z)
    np.testing.assert_array_equal(rot @ rot.T, np.eye(3))
    assert round(np.linalg.det(rot)) == 1  # a rotation, not a mirror
    np.testing.assert_array_equal(rot, [[1, 0, 0], [0, 0, 1], [0, -1, 0]])


def test_bad_beam_axis(tmp_path):
    mrc_write(tmp_path / "a.mrc", rand((4, 4, 4)))
    with pytest.raises(InputError, match="beam axis"):
        read_volume(tmp_path / "a.mrc", beam_axis="x")


# ------------------------------------------------------------------------------ bad input
def make_bad(tmp_path, case):
    """Write the bad file of ``case`` and return its path."""
    path = tmp_path / f"{case}.mrc"
    if case == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "text":
        path.write_text("this is not an MRC file at all\n" * 60)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "short":
        path.write_bytes(b"MAP " * 10)
    elif case == "truncated":
        mrc_write(path, rand((8, 8, 8)))
        path.write_bytes(path.read_bytes()[:-100])
    elif case == "two_d":
        mrc_write(path, rand((16, 16)))
    elif case == "one_section":
        mrc_write(path, rand((1, 16, 16)))
    elif case in ("nan", "inf"):
        d = rand((8, 8, 8))
        d[6, 3, 3] = np.nan if case == "nan" else -np.inf
        mrc_write(path, d)
    elif case == "constant":
        mrc_write(path, np.full((8, 8, 8), 1.5, np.float32))
    elif case == "voxel0":
        mrc_write(path, rand((8, 8, 8)), voxel_size=0.0)
    elif case == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    "case, needles",
    [
        ("missing", ["not found"]),
        ("folder", ["folder"]),
        ("random_bytes", ["not an MRC file"]),
        ("text", ["not an MRC file"]),
        ("empty", ["empty"]),
        ("short", ["not an MRC file"]),
        ("truncated", ["truncated", "(8, 8, 8)"]),
        ("two_d", ["2D", "(16, 16)"]),
        ("one_section", ["single section"]),
        ("nan", ["NaN", "section 6"]),
        ("inf", ["Inf"]),
        ("constant", ["constant", "1.5"]),
        ("voxel0", ["voxel size 0", "pixel size"]),
    ],
)
@pytest.mark.parametrize("mmap_read", [True, False])
def test_bad_input_is_one_line_naming_the_file(tmp_path, case, needles, mmap_read, one_line_error):
    path = make_bad(tmp_path, case)
    with pytest.raises(InputError) as e:
        read_volume(path, mmap=mmap_read)
    one_line_error(e, path, *needles)
    assert isinstance(e.value, ValueError)  # InputError is also a ValueError


def test_nan_found_in_a_later_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(mrc_checks, "CHUNK_ELEMENTS", 64)  # one section per chunk
    d = rand((8, 8, 8))
    d[7, 7, 7] = np.nan
    mrc_write(tmp_path / "n.mrc", d)
    with pytest.raises(InputError, match="NaN.*section 7"):
        read_volume(tmp_path / "n.mrc")
    assert read_volume(tmp_path / "n.mrc", check_values=False).data.shape == (8, 8, 8)


def test_checks_can_be_relaxed(tmp_path):
    two_d = make_bad(tmp_path, "two_d")
    assert read_volume(two_d, require_3d=False).data.shape == (16, 16)
    const = make_bad(tmp_path, "constant")
    assert float(read_volume(const, check_values=False).data.max()) == 1.5


def test_voxel_size_zero_needs_pixel_size(tmp_path):
    path = make_bad(tmp_path, "voxel0")
    vol = read_volume(path, pixel_size=4.2)
    assert vol.voxel_size == 4.2
    with pytest.raises(InputError, match="pixel_size"):
        read_volume(path, pixel_size=-1.0)
    # a given pixel size also overrides a valid header
    ok = mrc_write(tmp_path / "ok.mrc", rand((4, 4, 4)))
    assert read_volume(ok, pixel_size=3).voxel_size == 3


def test_anisotropic_voxel_uses_x_and_warns(tmp_path, caplog):
    path = tmp_path / "aniso.mrc"
    with mrcfile.new(path) as m:
        m.set_data(rand((4, 5, 6)))
        m.voxel_size = (2.0, 2.0, 3.0)
    with caplog.at_level(logging.WARNING, logger="cryogen.io.mrc"):
        assert read_volume(path).voxel_size == 2.0
    assert "anisotropic" in caplog.text


def test_multi_dot_names_and_derived_paths(tmp_path):
    data = rand((6, 6, 6))
    src = mrc_write(tmp_path / "TS_01.bin4.rec", data, voxel_size=10.8)
    vol = read_volume(src)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.voxel_size == 10.8
    assert stem_of(src) == "TS_01.bin4"
    out = derived_path(src, "_corrected")
    assert out == tmp_path / "TS_01.bin4_corrected.mrc"
    assert derived_path(src, "_wedge", ext="mrc", out_dir="res") == (
        Path("res") / "TS_01.bin4_wedge.mrc"
    )
    assert derived_path("a/TS_01.bin4.rec", "", ext=".tlt").name == "TS_01.bin4.tlt"
    write_volume(out, vol.data, voxel_size=vol.voxel_size)
    assert sorted(listing(tmp_path)) == ["TS_01.bin4.rec", "TS_01.bin4_corrected.mrc"]


@pytest.mark.parametrize("ext", [".st", ".ali", ".map", ".dat", ""])
def test_any_extension_with_a_valid_header(tmp_path, ext):
    data = rand((5, 6, 7))
    path = tmp_path / f"vol{ext}"
    with mrcfile.new(tmp_path / "x.mrc") as m:
        m.set_data(data)
        m.voxel_size = 1.5
    (tmp_path / "x.mrc").rename(path)
    np.testing.assert_array_equal(read_volume(path).data, data)


def test_permissive_read_only_for_mrc_extensions(tmp_path, caplog):
    # a valid file whose map ID was lost (as old software writes): read, with a warning,
    # when the extension says MRC; refused under an unknown extension
    data = rand((5, 6, 7))
    good = mrc_write(tmp_path / "old.mrc", data)
    raw = bytearray(good.read_bytes())
    raw[208:212] = b"\0\0\0\0"
    good.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="cryogen.io.mrc"):
        np.testing.assert_array_equal(read_volume(good).data, data)
    assert "permissive" in caplog.text
    other = tmp_path / "old.bin"
    other.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="not an MRC file"):
        read_volume(other)


def test_volume_dataclass():
    v = Volume(data=np.zeros((2, 3, 4), np.float32), voxel_size=1.0)
    assert v.shape == (2, 3, 4) and v.origin == (0.0, 0.0, 0.0) and v.path is None
