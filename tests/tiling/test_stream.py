"""Sliding-window inference streamed slab by slab: exact for identity and constant
predictors, bounded reads, equal to the in-memory blend."""

import pytest
import torch

import cryogen.tiling.mergers
from cryogen.tiling import sliding_window_inference, sliding_window_stream

SHAPES = [(32, 32, 32), (33, 34, 35), (5, 7, 9), (1, 20, 3), (9, 31, 14), (12, 10, 29)]


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
    monkeypatch.setattr(cryogen.tiling.mergers, "FLUSH_BYTES", 1)  # one row per write
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
    # the same tiles, weights and order of the sums: the same numbers
    assert torch.equal(out, ref)


def test_stream_rejects_bad_reads_and_predictions():
    x = torch.randn(20, 20, 20)
    with pytest.raises(ValueError, match="read"):
        sliding_window_stream(
            lambda a, b: x[None], x.shape, lambda t: t, lambda *a: None, roi_size=8, overlap=2
        )
    with pytest.raises(ValueError, match="predictor returned"):
        stream(x, lambda t: t[..., :4], roi_size=8, overlap=2)
