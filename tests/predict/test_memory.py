"""Bounded memory: streaming a memory-mapped tomogram keeps the resident set small."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cryogen.predict import bounded_io


@pytest.mark.slow
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
        import numpy as np, torch
        from torch import nn
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from predict.fakes import make_model
        from cryogen.predict import PredictOptions, bounded_io, predict_stream

        bounded_io.TOUCH_BYTES = 8 * 1024**2

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
        predict_stream(model, small, np.zeros_like(small), PredictOptions(overlap=8))  # warm up
        before = peak()
        predict_stream(model, src, out, PredictOptions(overlap=8, batch_size=4))
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
    monkeypatch.setattr(bounded_io, "TOUCH_BYTES", 3000)
    mm = np.memmap(tmp_path / "a.raw", np.float32, "w+", shape=(9, 10, 11))
    mm[...] = np.arange(mm.size, dtype=np.float32).reshape(mm.shape)
    view = np.moveaxis(mm, 1, 0)[2:7]  # rows of y across every z plane
    assert len(bounded_io.chunks_along_outer_axis(view)) > 1
    np.testing.assert_array_equal(bounded_io.read_bounded(view, np.float64), np.asarray(view))
    bounded_io.write_bounded(view, -np.asarray(view))
    assert (mm[:, 2:7] < 0).all() and (mm[:, :2] >= 0).all() and (mm[:, 7:] >= 0).all()
