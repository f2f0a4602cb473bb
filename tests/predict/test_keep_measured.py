"""Keeping the measured data: exact in memory and out of core."""

import numpy as np
import pytest
import torch

from cryogen.predict import keep_measured_fourier
from cryogen.wedge import missing_wedge_mask
from predict.fakes import measured_error, wedged


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


def test_keep_measured_refuses_different_shapes():
    x = wedged((8, 8, 8))
    with pytest.raises(ValueError, match="must be equal"):
        keep_measured_fourier(x, np.zeros((8, 8, 9), np.float32), -60, 60)
