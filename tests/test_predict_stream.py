"""Streamed whole-tomogram prediction: tiling + blending + streaming, data consistency,
sampling, STAR runs and the ``predict`` command."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from cryogen.errors import InputError
from cryogen.model import Normalisation, build_generator, save_checkpoint
from cryogen.predict import (
    LoadedModel,
    keep_measured_fourier,
    load_model,
    predict_file,
    predict_stream,
    predict_volume,
)
from cryogen.tiling import sliding_window_inference, sliding_window_stream
from cryogen.train import TrainConfig
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask

TINY = dict(
    method="cryogen",
    features=(4, 8),
    energy_features=(4, 4),
    energy_fc_features=(8,),
    subtomo_size=20,
    crop_size=16,
    n_subtomos=2,
    amp="off",
    threads=1,
    device="cpu",
    minutes=None,
    steps=1,
)
SHAPES = [(32, 32, 32), (33, 34, 35), (5, 7, 9), (1, 20, 3), (9, 31, 14), (12, 10, 29)]


# ------------------------------------------------------------------------------ helpers
def tiny_config(**kw):
    return TrainConfig.from_sources("cpu", overrides={**TINY, **kw})


def random_generator(cfg, seed=0):
    """The tiny U-Net++ with every weight random (the zero-initialised head made non-zero), so
    that its output depends on the orientation and position of the voxels in a tile."""
    g = build_generator(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return g.eval()


class Constant(nn.Module):
    def forward(self, x):
        return torch.full_like(x, 0.75)


def make_model(generator, *, sigma_g=0.05, mean=0.0, std=1.0, tilt=(-60.0, 60.0), crop=16):
    cfg = tiny_config(sigma_g=sigma_g, tilt_min=tilt[0], tilt_max=tilt[1])
    return LoadedModel(
        generator=generator.eval(),
        config=cfg,
        normalisation=Normalisation(mean, std),
        method="cryogen",
        tilt_min=tilt[0],
        tilt_max=tilt[1],
        voxel_size=1.0,
        crop_size=crop,
        step=0,
        path=Path("memory"),
        device=torch.device("cpu"),
        amp=None,
        sigma_g=sigma_g,
    )


def wedged(shape, seed=0, scale=40.0, offset=100.0):
    """A smooth random volume with the [-60, 60] wedge removed, far from mean 0 / std 1."""
    g = torch.Generator().manual_seed(seed)
    v = torch.nn.functional.pad(torch.rand(1, 1, *shape, generator=g), (1,) * 6, mode="replicate")
    v = torch.nn.functional.avg_pool3d(v, 3, 1, 0)[0, 0]
    return (apply_missing_wedge(v, -60, 60) * scale + offset).numpy().astype(np.float32)


def write_mrc(path, data, voxel=2.5, origin=(0.0, 0.0, 0.0)):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, dtype=np.float32))
        m.voxel_size = voxel
        m.header.origin.x, m.header.origin.y, m.header.origin.z = origin
    return path


def read_mrc(path):
    with mrcfile.open(path, permissive=True) as m:
        return (
            np.array(m.data),
            float(m.voxel_size.x),
            tuple(float(o) for o in m.header.origin.item()),
        )


def save_model(path, cfg, generator, *, mean, std, method="cryogen", tilt=(-60.0, 60.0), voxel=2.5):
    save_checkpoint(
        path,
        {
            "kind": "generator",
            "config": cfg.model_dump(mode="json"),
            "method": method,
            "tilt_min": tilt[0],
            "tilt_max": tilt[1],
            "voxel_size": voxel,
            "normalisation": {"mean": float(mean), "std": float(std)},
            "crop_size": cfg.crop_size,
            "step": 0,
            "elapsed_s": 0.0,
            "generator": generator.state_dict(),
        },
    )
    return path


def measured_error(x, out, tilt=(-60.0, 60.0)):
    """Largest change of the measured Fourier coefficients, relative to the largest one."""
    m = missing_wedge_mask(x.shape, *tilt, dtype=torch.float64).bool()
    fx = torch.fft.rfftn(torch.as_tensor(x, dtype=torch.float64))
    fo = torch.fft.rfftn(torch.as_tensor(out, dtype=torch.float64))
    return float((fx - fo)[m].abs().max() / fx.abs().max())


# ------------------------------------------------------------------------------ tiling
def stream(x, predictor, **kw):
    """Run ``sliding_window_stream`` from a tensor ``(n0, n1, n2)``, recording the reads."""
    out = torch.full(x.shape, float("nan"))
    reads, writes = [], []

    def read(a, b):
        reads.append((a, b))
        return x[a:b][None]

    def write(a, b, block):
        writes.append((a, b))
        out[a:b] = block[0]

    sliding_window_stream(read, x.shape, predictor, write, **kw)
    return out, reads, writes


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["cosine", "constant"])
def test_stream_identity_is_exact_and_reads_bounded_slabs(shape, mode):
    x = torch.randn(shape)
    out, reads, writes = stream(
        x, lambda t: t.clone(), roi_size=16, overlap=6, sw_batch_size=3, mode=mode
    )
    assert torch.equal(out, x)  # bit for bit: float64 accumulation, separable normalisation
    assert max(b - a for a, b in reads) <= 16
    # the written row ranges partition [0, n0) in order, each row once
    assert writes[0][0] == 0 and writes[-1][1] == shape[0]
    assert all(w1[0] == w0[1] for w0, w1 in zip(writes, writes[1:], strict=False))


def test_stream_flushes_in_chunks_without_changing_the_result(monkeypatch):
    import cryogen.tiling

    monkeypatch.setattr(cryogen.tiling, "_FLUSH_BYTES", 1)  # one row per write
    x = torch.randn(37, 21, 18)
    out, _, writes = stream(x, lambda t: t * 2, roi_size=16, overlap=5)
    assert torch.equal(out, 2 * x) and all(b - a == 1 for a, b in writes) and len(writes) == 37


@pytest.mark.parametrize("shape", SHAPES)
def test_stream_constant_predictor_returns_constant(shape):
    out, _, _ = stream(
        torch.randn(shape), lambda t: torch.full_like(t, 2.5), roi_size=16, overlap=4
    )
    assert torch.equal(out, torch.full(shape, 2.5))


@pytest.mark.parametrize("shape", SHAPES)
def test_stream_equals_in_memory_tiling(shape):
    x = torch.randn(shape)

    def f(t):  # depends on the whole tile: blending matters
        return torch.tanh(2 * t) + t.mean(dim=(2, 3, 4), keepdim=True)

    out, _, _ = stream(x, f, roi_size=16, overlap=6, sw_batch_size=2)
    ref = sliding_window_inference(x, f, roi_size=16, overlap=6, sw_batch_size=2)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_stream_rejects_bad_reads_and_predictions():
    x = torch.randn(20, 20, 20)
    with pytest.raises(ValueError, match="read"):
        sliding_window_stream(
            lambda a, b: x[None], x.shape, lambda t: t, lambda *a: None, roi_size=8, overlap=2
        )
    with pytest.raises(ValueError, match="predictor returned"):
        stream(x, lambda t: t[..., :4], roi_size=8, overlap=2)


# ------------------------------------------------------------------------------ predict_stream
@pytest.mark.parametrize("shape", SHAPES)
def test_identity_model_returns_the_input_through_streaming(tmp_path, shape):
    x = wedged(shape)
    model = make_model(nn.Identity(), mean=float(x.mean()), std=float(x.std()) + 1.0)
    src = np.memmap(tmp_path / "in.raw", dtype=np.float32, mode="w+", shape=shape)
    src[...] = x
    out = np.memmap(tmp_path / "out.raw", dtype=np.float32, mode="w+", shape=shape)
    predict_stream(model, src, out, overlap=6, batch_size=3)
    # only the normalisation's float32 round trip (x - m) / s * s + m differs from x
    np.testing.assert_allclose(out, x, rtol=1e-6, atol=1e-4)


def test_constant_model_returns_a_constant():
    x = wedged((13, 22, 17))
    model = make_model(Constant(), mean=3.0, std=2.0)
    out = np.zeros_like(x)
    predict_stream(model, x, out, overlap=4)
    np.testing.assert_array_equal(out, np.full_like(x, 0.75 * 2.0 + 3.0))


@pytest.mark.parametrize("shape", [(20, 30, 26), (24, 18, 18), (7, 11, 30), (10, 9, 8)])
def test_streaming_equals_predict_volume(tmp_path, shape):
    """A random (orientation-dependent) network: the streamed result, which permutes tiles to
    stream along the longest axis, equals the in-memory one."""
    cfg = tiny_config()
    x = wedged(shape, seed=1)
    model = make_model(random_generator(cfg), mean=float(x.mean()), std=float(x.std()))
    ref = predict_volume(model, x, overlap=4, batch_size=1)
    out = np.zeros_like(x)
    predict_stream(model, x, out, overlap=4, batch_size=2)
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6 * scale)


def test_predict_file_keeps_header_scale_and_orientation(tmp_path):
    cfg = tiny_config()
    x = wedged((12, 26, 20), seed=2)
    gen = random_generator(cfg)
    model = make_model(gen, mean=float(x.mean()), std=float(x.std()))
    src = write_mrc(tmp_path / "t.rec", x, voxel=3.25, origin=(10.0, -4.0, 7.5))
    res = predict_file(model, src, tmp_path / "o.mrc", overlap=4)
    data, voxel, origin = read_mrc(tmp_path / "o.mrc")
    assert data.shape == x.shape and res.shape == x.shape and voxel == pytest.approx(3.25)
    assert origin == (10.0, -4.0, 7.5)
    ref = predict_volume(model, x, overlap=4)
    np.testing.assert_allclose(data, ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))
    # beam along y: computed in the z convention, written back in the file's orientation
    from cryogen.io import rotate_beam_y_to_z, rotate_beam_z_to_y

    xy = np.ascontiguousarray(rotate_beam_z_to_y(x))
    write_mrc(tmp_path / "ty.mrc", xy, voxel=3.25, origin=(10.0, 7.5, -4.0))
    predict_file(model, tmp_path / "ty.mrc", tmp_path / "oy.mrc", beam_axis="y", overlap=4)
    dy, _, oy = read_mrc(tmp_path / "oy.mrc")
    assert dy.shape == xy.shape and oy == (10.0, 7.5, -4.0)
    np.testing.assert_allclose(
        rotate_beam_y_to_z(dy), ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max())
    )


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_nan_input_leaves_no_output(tmp_path):
    x = wedged((40, 12, 12))
    x[35, 3, 3] = np.nan
    write_mrc(tmp_path / "bad.mrc", x)
    model = make_model(nn.Identity())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match=r"bad\.mrc: the volume contains NaN"):
        predict_file(model, tmp_path / "bad.mrc", out_dir / "o.mrc", overlap=4)
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


# ------------------------------------------------------------------------------ keep measured
@pytest.mark.parametrize("max_memory", [512 * 1024**2, 0], ids=["in-memory", "out-of-core"])
def test_keep_measured_fourier_is_exact(tmp_path, max_memory):
    x = wedged((18, 23, 21), seed=3)
    g = torch.Generator().manual_seed(4)
    pred = (torch.randn(x.shape, generator=g) * 30 + 90).numpy()
    out = np.memmap(tmp_path / "o.raw", dtype=np.float32, mode="w+", shape=x.shape)
    out[...] = pred
    how = keep_measured_fourier(x, out, -60, 60, max_memory=max_memory, scratch_dir=tmp_path)
    assert how == ("in-memory" if max_memory else "out-of-core")
    assert measured_error(x, out) < 2e-6  # float32 output; complex64 scratch out of core
    # the missing wedge is the prediction's
    m = missing_wedge_mask(x.shape, -60, 60, dtype=torch.float64).bool()
    fo = torch.fft.rfftn(torch.as_tensor(np.array(out), dtype=torch.float64))
    fp = torch.fft.rfftn(torch.as_tensor(pred, dtype=torch.float64))
    assert float((fo - fp)[~m].abs().max() / fp.abs().max()) < 2e-6
    assert [p.name for p in tmp_path.iterdir()] == ["o.raw"]  # scratch file removed


def test_keep_measured_stream_matches_in_memory_and_keeps_the_data(tmp_path):
    cfg = tiny_config()
    x = wedged((14, 26, 22), seed=5)
    model = make_model(random_generator(cfg), mean=float(x.mean()), std=float(x.std()))
    ref = predict_volume(model, x, overlap=4, keep_measured=True)
    for max_memory in (512 * 1024**2, 0):
        out = np.zeros_like(x)
        predict_stream(
            model,
            x,
            out,
            overlap=4,
            keep_measured=True,
            max_memory=max_memory,
            scratch_dir=tmp_path,
        )
        assert measured_error(x, out) < 2e-6
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


# ------------------------------------------------------------------------------ samples
def test_std_map_of_a_deterministic_model_is_zero():
    x = wedged((10, 20, 18))
    # a network that ignores its (noisy) input
    model = make_model(Constant(), sigma_g=0.5, mean=1.0, std=2.0)
    mean, std = np.zeros_like(x), np.ones_like(x)
    predict_stream(model, x, mean, std_out=std, samples=4, overlap=4)
    assert np.all(std == 0.0) and np.all(mean == 0.75 * 2.0 + 1.0)
    # a real network without input noise: every pass is the same
    model = make_model(random_generator(tiny_config()), sigma_g=0.0, mean=100.0, std=10.0)
    one = np.zeros_like(x)
    predict_stream(model, x, one, overlap=4)
    predict_stream(model, x, mean, std_out=std, samples=3, overlap=4)
    assert np.all(std == 0.0)
    np.testing.assert_allclose(mean, one, rtol=1e-6, atol=1e-5)


def test_samples_of_the_identity_give_the_noise_level_without_seams():
    """Identity network: sample s is x + sigma_g * n_s exactly, if the noise of a voxel does not
    depend on the tile that reads it; the std map is then sigma_g * std_norm on average,
    the same inside tile overlaps as elsewhere, and reproducible from the seed."""
    x = wedged((16, 40, 28))
    sig, s_norm = 0.3, 5.0
    model = make_model(nn.Identity(), sigma_g=sig, mean=float(x.mean()), std=s_norm)
    n = 8
    mean, std = np.zeros_like(x), np.zeros_like(x)
    predict_stream(model, x, mean, std_out=std, samples=n, overlap=6, seed=3)
    expected = sig * s_norm
    assert abs(float(std.mean()) / expected - 1) < 0.1
    assert abs(float((mean - x).std()) / (expected / np.sqrt(n)) - 1) < 0.1
    # a blend of different noise values would shrink the spread inside the overlaps
    profile = std.mean(axis=(0, 2))  # along the streamed (longest) axis y
    assert float(profile.min()) > 0.85 * float(profile.max())
    again_mean, again_std = np.zeros_like(x), np.zeros_like(x)
    predict_stream(model, x, again_mean, std_out=again_std, samples=n, overlap=6, seed=3)
    assert np.array_equal(again_mean, mean) and np.array_equal(again_std, std)
    predict_stream(model, x, again_mean, std_out=again_std, samples=n, overlap=6, seed=4)
    assert not np.array_equal(again_std, std)


def test_sample_arguments_are_checked():
    x = wedged((8, 8, 8))
    model = make_model(nn.Identity())
    with pytest.raises(InputError, match="samples >= 2"):
        predict_stream(model, x, np.zeros_like(x), std_out=np.zeros_like(x), samples=1, overlap=4)
    with pytest.raises(InputError, match="overlap"):
        predict_stream(model, x, np.zeros_like(x), tile=8, overlap=8)


# ------------------------------------------------------------------------------ memory
@pytest.mark.parametrize(
    ("shape", "crop"), [((768, 128, 256), 32), ((64, 1024, 512), 64)], ids=["z", "y"]
)
def test_peak_memory_does_not_grow_with_the_volume(tmp_path, shape, crop):
    """A 96-128 MiB memory-mapped input streamed into a memory-mapped output of the same size:
    the resident set grows by a fraction of that (pages are handed back as slabs finish),
    also when the streamed axis (``y`` here) is not the file's outermost one, so that every
    slab touches every ``z`` plane (the kernel may then map whole page-cache folios: without
    the bounded copies the ``y`` case grew by 68 MiB on the development machine, without
    any page release the ``z`` case by 145 MiB)."""
    script = textwrap.dedent(
        f"""
        import json, os, resource, sys
        from pathlib import Path
        import numpy as np, torch
        from torch import nn
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_predict_stream import make_model
        import cryogen.predict as P

        P._TOUCH_BYTES = 8 * 1024**2

        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB

        shape = {shape!r}
        src = np.memmap({str(tmp_path / "in.raw")!r}, np.float32, "w+", shape=shape)
        for z in range(0, shape[0], 4):  # small chunks: a low high-water mark before the run
            src[z:z + 4] = np.random.default_rng(z).standard_normal((4, *shape[1:]), np.float32)
        src.flush(); del src
        fd = os.open({str(tmp_path / "in.raw")!r}, os.O_RDONLY)  # out of the page cache
        os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
        src = np.memmap({str(tmp_path / "in.raw")!r}, np.float32, "r", shape=shape)
        out = np.memmap({str(tmp_path / "out.raw")!r}, np.float32, "w+", shape=shape)
        model = make_model(nn.Identity(), crop={crop})
        small = np.zeros((40, 40, 40), np.float32)
        P.predict_stream(model, small, np.zeros_like(small), overlap=8)  # warm up
        before = peak()
        P.predict_stream(model, src, out, overlap=8, batch_size=4)
        after = peak()
        ok = all(np.array_equal(src[z:z + 64], out[z:z + 64]) for z in range(0, shape[0], 64))
        print(json.dumps({{"before": before, "after": after, "ok": ok}}))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["ok"]
    # fronts: 32 x 128 x 256 and 64 x 64 x 512 voxels (8 and 16 MiB of float64 accumulator)
    assert info["after"] - info["before"] < 40, info


def test_bounded_copies_of_strided_memory_maps(tmp_path, monkeypatch):
    import cryogen.predict as P

    monkeypatch.setattr(P, "_TOUCH_BYTES", 3000)
    mm = np.memmap(tmp_path / "a.raw", np.float32, "w+", shape=(9, 10, 11))
    mm[...] = np.arange(mm.size, dtype=np.float32).reshape(mm.shape)
    view = np.moveaxis(mm, 1, 0)[2:7]  # rows of y across every z plane
    assert len(P._chunks_along_outer_axis(view)) > 1
    np.testing.assert_array_equal(P._read_bounded(view, np.float64), np.asarray(view))
    P._write_bounded(view, -np.asarray(view))
    assert (mm[:, 2:7] < 0).all() and (mm[:, :2] >= 0).all() and (mm[:, 7:] >= 0).all()


# ------------------------------------------------------------------------------ CLI
@pytest.fixture()
def app():
    from cryogen.cli_predict import register

    a = typer.Typer()

    @a.callback()
    def _root() -> None:  # a group, so that the command is called by its name
        pass

    register(a)
    return a


@pytest.fixture()
def checkpoint(tmp_path):
    x = wedged((14, 24, 20))
    cfg = tiny_config()
    return save_model(
        tmp_path / "model.pt", cfg, random_generator(cfg), mean=float(x.mean()), std=float(x.std())
    )


def invoke(app, args):
    args = [str(a) for a in args]
    if "--overlap" not in args:  # the test models' tiles are 16 voxels, the default overlap 16
        args += ["--overlap", "4"]
    return CliRunner().invoke(app, args)


def one_line_error(res, needle):
    assert res.exit_code == 1, res.output
    err = res.stderr if res.stderr else res.output
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert needle in " ".join(err.split()), err


def test_cli_single_file_and_samples(tmp_path, app, checkpoint):
    x = wedged((14, 24, 20))
    write_mrc(tmp_path / "t.mrc", x, voxel=2.5)
    res = invoke(
        app,
        ["predict", checkpoint, tmp_path / "t.mrc", "-o", tmp_path / "o.mrc", "--overlap", "4",
         "--samples", "3", "--device", "cpu", "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    mean, voxel, _ = read_mrc(tmp_path / "o.mrc")
    std, _, _ = read_mrc(tmp_path / "o_std.mrc")
    assert mean.shape == std.shape == x.shape and voxel == pytest.approx(2.5)
    assert np.isfinite(mean).all() and (std >= 0).all() and float(std.max()) > 0
    # the output exists now: refused without --overwrite, before any work
    res = invoke(app, ["predict", checkpoint, tmp_path / "t.mrc", "-o", tmp_path / "o.mrc"])
    one_line_error(res, "already exists; use --overwrite")


def test_cli_star_run_writes_every_file_and_the_star(tmp_path, app, checkpoint):
    from cryogen.io import CORRECTED_TOMO_NAME, read_star, tomograms_from_star, write_star

    data = tmp_path / "data"
    data.mkdir()
    vols = {"TS_01": wedged((14, 24, 20), seed=7), "TS_02": wedged((11, 19, 23), seed=8)}
    for name, v in vols.items():
        write_mrc(data / f"{name}.rec", v, voxel=2.5)
    import pandas as pd

    frame = pd.DataFrame(
        {
            "rlnTomoName": [f"{n}.rec" for n in vols],
            "rlnPixelSize": [2.5, 2.5],
            "rlnTiltMin": [-60.0, -60.0],
            "rlnTiltMax": [60.0, 60.0],
        }
    )
    write_star(data / "tomograms.star", frame)
    out = tmp_path / "corrected"
    res = invoke(
        app,
        ["predict", checkpoint, data / "tomograms.star", "-o", out, "--overlap", "4",
         "--samples", "2", "--keep-measured", "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "TS_01_corrected.mrc",
        "TS_01_corrected_std.mrc",
        "TS_02_corrected.mrc",
        "TS_02_corrected_std.mrc",
        "tomograms_corrected.star",
    ]
    for name, v in vols.items():
        d, _, _ = read_mrc(out / f"{name}_corrected.mrc")
        assert d.shape == v.shape
        assert measured_error(v, d) < 2e-6
    star = out / "tomograms_corrected.star"
    assert list(read_star(star)[CORRECTED_TOMO_NAME]) == [
        "TS_01_corrected.mrc",
        "TS_02_corrected.mrc",
    ]
    entries = tomograms_from_star(star)  # the rewritten paths still resolve
    assert [e.path.resolve() for e in entries] == [(data / f"{n}.rec").resolve() for n in vols]
    assert all(e.corrected_path.is_file() for e in entries)
    # a second run refuses to overwrite, and names the first existing file
    res = invoke(app, ["predict", checkpoint, data / "tomograms.star", "-o", out, "--quiet"])
    one_line_error(res, "TS_01_corrected.mrc already exists")


def test_cli_several_mrc_files_go_to_a_folder(tmp_path, app, checkpoint):
    for n in ("a", "b"):
        write_mrc(tmp_path / f"{n}.mrc", wedged((9, 17, 12), seed=ord(n)))
    res = invoke(
        app, ["predict", checkpoint, tmp_path / "a.mrc", tmp_path / "b.mrc", "-o", tmp_path / "o",
              "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "a_corrected.mrc",
        "b_corrected.mrc",
    ]
    res = invoke(
        app, ["predict", checkpoint, tmp_path / "a.mrc", tmp_path / "b.mrc", "-o",
              tmp_path / "x.mrc"],
    )  # fmt: skip
    one_line_error(res, "2 tomograms need an output folder")


def test_cli_errors_for_a_checkpoint_that_does_not_fit(tmp_path, app, checkpoint):
    write_mrc(tmp_path / "t.mrc", wedged((10, 12, 12)))
    t, o = tmp_path / "t.mrc", tmp_path / "o.mrc"
    one_line_error(
        invoke(app, ["predict", checkpoint, t, "-o", o, "--tilt-min", "-50"]),
        "trained for tilt range [-60, 60] deg, not the requested [-50, 60]",
    )
    one_line_error(
        invoke(app, ["predict", checkpoint, t, "-o", o, "--method", "isonet"]),
        "trained with method 'cryogen', not the requested 'isonet'",
    )
    one_line_error(
        invoke(app, ["predict", tmp_path / "nothing.pt", t, "-o", o]),
        "no such checkpoint file or run folder",
    )
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    one_line_error(
        invoke(app, ["predict", tmp_path / "junk.pt", t, "-o", o]), "not a readable CryoGEN"
    )
    one_line_error(
        invoke(app, ["predict", checkpoint, tmp_path / "none.mrc", "-o", o]), "not found"
    )
    # a STAR row recorded with another tilt range
    import pandas as pd

    from cryogen.io import write_star

    write_star(
        tmp_path / "s.star",
        pd.DataFrame({"rlnTomoName": ["t.mrc"], "rlnTiltMin": [-54.0], "rlnTiltMax": [62.0]}),
    )
    one_line_error(
        invoke(app, ["predict", checkpoint, tmp_path / "s.star", "-o", tmp_path / "d"]),
        "s.star, row 1: tilt range [-54, 62] deg, but",
    )
    assert not o.exists()


def test_load_model_of_a_saved_checkpoint_streams_like_the_model_in_memory(tmp_path, checkpoint):
    x = wedged((14, 24, 20))
    model = load_model(checkpoint, "cpu")
    write_mrc(tmp_path / "t.mrc", x)
    predict_file(model, tmp_path / "t.mrc", tmp_path / "o.mrc", overlap=4, batch_size=2)
    got, _, _ = read_mrc(tmp_path / "o.mrc")
    ref = predict_volume(model, x, overlap=4)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))


# ------------------------------------------------------------------- test-time augmentation
@pytest.mark.parametrize("tilt", [(-60.0, 60.0), (-54.0, 62.0)])
def test_tta_is_the_mean_over_the_wedge_symmetries_and_commutes_with_them(tilt):
    """With one tile covering the volume, ``tta`` equals the explicit mean of
    ``R^-1 g(R y)`` over the rotations that keep the wedge, and the result turns with its
    input under each of them: ``f(R y) = R f(y)``, which no single pass of a random network
    does."""
    from cryogen.rotations import rotate, rotate_inverse
    from cryogen.wedge import wedge_symmetries

    cfg = tiny_config()
    x = torch.from_numpy(wedged((16, 16, 16), seed=4))
    model = make_model(random_generator(cfg), mean=float(x.mean()), std=float(x.std()), tilt=tilt)
    rots = wedge_symmetries(*tilt)

    def plain(v):
        return torch.from_numpy(predict_volume(model, v.contiguous(), overlap=0))

    def tta(v):
        return torch.from_numpy(predict_volume(model, v.contiguous(), overlap=0, tta=True))

    ref = torch.stack([rotate_inverse(plain(rotate(x, i)), i) for i in rots]).mean(0)
    out = tta(x)
    scale = float(out.abs().max())
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6 * scale)
    for i in rots[1:]:
        torch.testing.assert_close(tta(rotate(x, i)), rotate(out, i), rtol=1e-5, atol=1e-6 * scale)
        assert not torch.allclose(plain(rotate(x, i)), rotate(plain(x), i), atol=1e-3 * scale)


@pytest.mark.parametrize("shape", [(33, 34, 35), (9, 31, 14)])
def test_tta_streaming_equals_predict_volume(shape):
    """Overlapping tiles, streamed along the longest axis (tiles permuted to the view): the
    rotation average is taken in the volume's frame, so streaming equals in memory, and it
    differs from the plain prediction."""
    cfg = tiny_config()
    x = wedged(shape, seed=2)
    model = make_model(random_generator(cfg), mean=float(x.mean()), std=float(x.std()))
    ref = predict_volume(model, x, overlap=4, tta=True)
    out = np.zeros_like(x)
    predict_stream(model, x, out, overlap=4, batch_size=2, tta=True)
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6 * scale)
    plain = predict_volume(model, x, overlap=4)
    assert float(np.abs(plain - ref).max()) > 1e-3 * scale


def test_cli_tta_writes_the_rotation_average(tmp_path, app, checkpoint):
    x = wedged((14, 24, 20))
    write_mrc(tmp_path / "t.mrc", x, voxel=2.5)
    res = invoke(
        app,
        ["predict", checkpoint, tmp_path / "t.mrc", "-o", tmp_path / "o.mrc", "--tta",
         "--device", "cpu", "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out, voxel, _ = read_mrc(tmp_path / "o.mrc")
    ref = predict_volume(load_model(checkpoint, "cpu"), x, overlap=4, tta=True)
    assert voxel == pytest.approx(2.5)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))
