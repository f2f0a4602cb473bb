"""The commands from the microscope to a training set, end to end through the CLI:
simulate -> reconstruct -> prepare -> deconv -> make-mask, and their one-line errors."""

import mrcfile
import numpy as np
import pytest
from typer.testing import CliRunner

from cryogen.cli import app
from cryogen.io import read_star, read_tlt, read_volume, tomograms_from_star
from cryogen.tomo import tilt_angles

runner = CliRunner()
N = 32


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, result.output


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    c = np.arange(N) - N // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    v = np.zeros((N, N, N), np.float32)
    for _ in range(10):
        p = rng.uniform(-9, 9, 3)
        s = rng.uniform(1.5, 3.0)
        v += np.exp(-((z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2) / (2 * s * s))
    return v


def write_mrc(path, data, voxel_size=10.0):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, dtype=np.float32))
        m.voxel_size = voxel_size
    return path


@pytest.fixture
def phantom(tmp_path):
    return write_mrc(tmp_path / "phantom.mrc", blobs())


def test_round_trip_writes_every_file_and_the_star_columns(tmp_path, phantom):
    ts, tomo, star = tmp_path / "ts.mrc", tmp_path / "tomo.mrc", tmp_path / "tomograms.star"
    ok("simulate", phantom, "-o", ts, "--tilt-min", -54, "--tilt-max", 62, "--tilt-step", 4)
    angles = read_tlt(tmp_path / "ts.tlt")
    assert np.array_equal(angles, tilt_angles(-54, 62, 4))
    stack = read_volume(ts)
    assert stack.shape == (len(angles), N, N) and stack.voxel_size == pytest.approx(10.0)

    ok("reconstruct", ts, "--tlt", tmp_path / "ts.tlt", "-o", tomo, "--thickness", N)
    rec = read_volume(tomo)
    assert rec.shape == (N, N, N) and rec.voxel_size == pytest.approx(10.0)
    assert np.corrcoef(rec.data.ravel(), blobs().ravel())[0, 1] >= 0.8

    ok(
        "prepare", tomo, "-o", star, "--tilt-min", -54, "--tilt-max", 62, "--defocus", 2.5,
        "--voltage", 200, "--cs", 2.0, "--amplitude-contrast", 0.1,
    )  # fmt: skip
    ok("deconv", star)
    ok("make-mask", star, "--protein", "bright", "--patch-size", 2, "--z-crop", 0.1)

    for name in ("ts.mrc", "ts.tlt", "tomo.mrc", "tomograms.star", "tomo_deconv.mrc"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "tomo_mask.mrc").is_file()
    frame = read_star(star)
    for col in (
        "rlnTomoName", "rlnPixelSize", "rlnDefocus", "rlnVoltage", "rlnSphericalAberration",
        "rlnAmplitudeContrast", "rlnTiltMin", "rlnTiltMax", "rlnDeconvTomoName", "rlnMaskName",
    ):  # fmt: skip
        assert col in frame.columns, col
    (entry,) = tomograms_from_star(star)
    assert entry.path == tomo and entry.pixel_size == pytest.approx(10.0)
    assert entry.defocus == pytest.approx(25000.0)  # Å
    assert (entry.voltage, entry.cs, entry.amplitude_contrast) == (200.0, 2.0, 0.1)
    assert (entry.tilt_min, entry.tilt_max) == (-54.0, 62.0)
    assert entry.deconv_path == tmp_path / "tomo_deconv.mrc"
    assert entry.mask == tmp_path / "tomo_mask.mrc"
    assert frame["rlnTomoName"][0] == "tomo.mrc"  # relative to the STAR file
    deconv = read_volume(entry.deconv_path)
    assert deconv.voxel_size == pytest.approx(10.0)
    assert float(deconv.data.std()) == pytest.approx(float(rec.data.std()), rel=1e-3)
    mask = read_volume(entry.mask, check_values=False).data
    assert set(np.unique(mask)) <= {0.0, 1.0} and 0 < mask.mean() < 1
    assert not mask[:2].any() and not mask[-2:].any()  # --z-crop 0.1: 5% of 32 at each end


def test_simulate_with_ctf_and_noise_and_binned_reconstruction(tmp_path, phantom):
    ts = tmp_path / "ts.mrc"
    ok("simulate", phantom, "-o", ts, "--defocus", 3, "--dose", 80, "--snr", 2, "--seed", 4)
    out = tmp_path / "bin2.mrc"
    ok("reconstruct", ts, "-o", out, "--bin", 2)  # --tlt defaults to ts.tlt
    rec = read_volume(out)
    assert rec.shape == (16, 16, 16) and rec.voxel_size == pytest.approx(20.0)
    thin = tmp_path / "thin.mrc"
    ok("reconstruct", ts, "-o", thin, "--target-pixel-size", 20, "--thickness", 16)
    assert read_volume(thin).shape == (8, 16, 16)


def test_prepare_a_folder_with_binning(tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    write_mrc(folder / "a.rec", blobs(1), voxel_size=5.0)
    write_mrc(folder / "b.mrc", blobs(2), voxel_size=5.0)
    (folder / "notes.txt").write_text("not a tomogram")
    star = tmp_path / "tomograms.star"
    ok("prepare", folder, "-o", star, "--target-pixel-size", 10)
    entries = tomograms_from_star(star)
    assert [e.path.name for e in entries] == ["a_10A.mrc", "b_10A.mrc"]
    assert all(e.pixel_size == pytest.approx(10.0) for e in entries)
    assert all(e.defocus is None for e in entries)
    assert read_volume(entries[0].path).shape == (16, 16, 16)


def test_deconv_and_mask_of_a_single_tomogram(tmp_path, phantom):
    ok("deconv", phantom, "--defocus", 2, "--chunk-size", 16, "--overlap", 0.5)
    assert (tmp_path / "phantom_deconv.mrc").is_file()
    out = tmp_path / "m.mrc"
    ok("make-mask", phantom, "-o", out, "--protein", "bright", "--z-crop", 0)
    assert read_volume(out, check_values=False).shape == (N, N, N)


def test_star_written_elsewhere_keeps_valid_paths(tmp_path, phantom):
    star = tmp_path / "tomograms.star"
    ok("prepare", phantom, "-o", star, "--defocus", 2)
    sub = tmp_path / "sub"
    sub.mkdir()
    ok("deconv", star, "-o", sub / "t.star")
    (entry,) = tomograms_from_star(sub / "t.star")
    assert entry.path.resolve() == phantom.resolve()
    assert entry.deconv_path.resolve() == (tmp_path / "phantom_deconv.mrc").resolve()


def test_one_line_errors(tmp_path, phantom):
    ts = tmp_path / "ts.mrc"
    ok("simulate", phantom, "-o", ts, "--tilt-step", 10)
    (tmp_path / "bad.tlt").write_text("0\n10\n")
    assert_one_line_error(
        run("reconstruct", ts, "--tlt", tmp_path / "bad.tlt", "-o", tmp_path / "r.mrc"),
        "2 tilt angles for the 13 images",
    )
    assert_one_line_error(run("simulate", phantom, "-o", ts), "already exists", "--overwrite")
    assert_one_line_error(run("deconv", phantom), "--defocus")
    star = tmp_path / "t.star"
    assert_one_line_error(run("prepare", phantom, "-o", star, "--defocus", 35000), "µm")
    ok("prepare", phantom, "-o", star)
    assert_one_line_error(run("deconv", star), "row 1", "rlnDefocus")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run("prepare", empty, "-o", tmp_path / "e.star"), "no tomograms")
    assert_one_line_error(
        run("reconstruct", ts, "-o", tmp_path / "r.mrc", "--target-pixel-size", 5),
        "only bins",
    )


def test_simulate_halves_writes_even_and_odd_frames_with_independent_noise(tmp_path, phantom):
    ts = tmp_path / "ts.mrc"
    assert_one_line_error(run("simulate", phantom, "-o", ts, "--halves"), "--dose or --snr")
    ok("simulate", phantom, "-o", ts, "--halves", "--snr", 0.5, "--seed", 3)
    even, odd = (read_volume(tmp_path / f"ts_{h}.mrc").load() for h in ("even", "odd"))
    assert read_tlt(tmp_path / "ts_even.tlt").tolist() == read_tlt(tmp_path / "ts_odd.tlt").tolist()
    assert not (tmp_path / "ts.mrc").exists()
    clean = tmp_path / "clean.mrc"
    ok("simulate", phantom, "-o", clean)
    signal = read_volume(clean).load()
    n_even, n_odd = even - signal, odd - signal
    # each half: twice the noise variance of an SNR 0.5 series; the halves' noise independent
    assert n_even.var() / signal.var() == pytest.approx(2 / 0.5, rel=0.1)
    assert abs(np.corrcoef(n_even.ravel(), n_odd.ravel())[0, 1]) < 0.05
    for h in ("even", "odd"):
        ok("reconstruct", tmp_path / f"ts_{h}.mrc")  # --tlt: ts_even.tlt beside it
        assert read_volume(tmp_path / f"ts_{h}_rec.mrc").shape == (N, N, N)


def test_reconstruct_from_even_and_odd_tilts(tmp_path, phantom):
    ts = tmp_path / "ts.mrc"
    ok("simulate", phantom, "-o", ts, "--tilt-step", 10)
    angles = read_tlt(tmp_path / "ts.tlt")
    ok("reconstruct", ts, "--tilts", "even")
    ok("reconstruct", ts, "--tilts", "odd")
    ok("reconstruct", ts)
    even, odd, full = (
        read_volume(tmp_path / f"ts{s}_rec.mrc").load() for s in ("_even", "_odd", "")
    )
    # back-projection is linear: the halves' sum has every tilt of the full reconstruction
    # (each half weighted for its own tilt increment, so compare directions, not scales)
    assert np.corrcoef((even + odd).ravel(), full.ravel())[0, 1] > 0.99
    assert len(angles) >= 4 and not np.allclose(even, odd)
    assert_one_line_error(run("reconstruct", ts, "--tilts", "half"), "--tilts", "even")
