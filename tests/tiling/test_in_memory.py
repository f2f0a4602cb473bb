"""Sliding-window inference in memory: exact for identity and constant predictors, any
shape; the tile grid and its weights."""

import pytest
import torch

from cryogen.tiling import blend_weights_1d, count_tiles, sliding_window_inference, tile_starts
from cryogen.tiling.grid import TileGrid, pad_to

SHAPES = [(32, 32, 32), (33, 34, 35), (5, 7, 9), (1, 20, 3), (40, 17, 23)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["cosine", "constant"])
def test_identity_predictor_returns_input(shape, mode, device):
    x = torch.randn(shape, device=device, generator=None)
    calls = []

    def ident(t):
        calls.append(t.shape)
        assert t.shape[-3:] == (16, 16, 16)
        return t.clone()

    out = sliding_window_inference(x, ident, roi_size=16, overlap=6, sw_batch_size=3, mode=mode)
    assert out.shape == x.shape and out.device == x.device
    torch.testing.assert_close(out, x, rtol=1e-6, atol=1e-6)
    assert torch.equal(out, x)  # float64 sums, separable normalisation
    assert all(c[0] <= 3 for c in calls)


@pytest.mark.parametrize("shape", SHAPES)
def test_constant_predictor_returns_constant(shape):
    x = torch.randn(shape)
    out = sliding_window_inference(x, lambda t: torch.full_like(t, 2.5), roi_size=16, overlap=4)
    torch.testing.assert_close(out, torch.full(shape, 2.5))


def test_batch_and_channels_kept():
    x = torch.randn(2, 1, 21, 30, 19, dtype=torch.float64)
    out = sliding_window_inference(x, lambda t: torch.cat([t, -t], 1), roi_size=12, overlap=4)
    assert out.shape == (2, 2, 21, 30, 19) and out.dtype == torch.float64
    torch.testing.assert_close(out[:, :1], x)
    torch.testing.assert_close(out[:, 1:], -x)


def test_tiles_cover_and_weights_partition_unity():
    for length in (16, 17, 40, 100, 141):
        st = tile_starts(length, 16, 4)
        assert st[0] == 0 and st[-1] == length - 16
        assert all(b - a <= 12 for a, b in zip(st, st[1:], strict=False))  # overlap >= 4
    # two tiles overlapping by exactly the ramp: weights sum to 1 in the overlap
    a = blend_weights_1d(16, 0, 28, 4, "cosine", torch.float64)
    b = blend_weights_1d(16, 12, 28, 4, "cosine", torch.float64)
    torch.testing.assert_close(a[12:] + b[:4], torch.ones(4, dtype=torch.float64))
    assert bool((a > 0).all()) and float(a[0]) == 1.0  # no taper at the volume's face


def test_blending_is_smooth_for_a_tile_dependent_predictor():
    """Tiles predicting different offsets blend without jumps larger than the offset step."""
    x = torch.zeros(1, 1, 8, 8, 60)
    counter = iter(range(100))

    def offset(t):
        return t + float(next(counter))

    out = sliding_window_inference(x, offset, roi_size=16, overlap=8, mode="cosine")
    line = out[0, 0, 4, 4]
    steps = (line[1:] - line[:-1]).abs()
    assert float(steps.max()) < 0.5  # a hard seam would jump by 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_inference(torch.zeros(8, 8, 8), lambda t: t, roi_size=8, overlap=8)
    with pytest.raises(ValueError, match="predictor returned"):
        sliding_window_inference(torch.zeros(8, 8, 8), lambda t: t[..., :4], roi_size=8, overlap=2)


@pytest.mark.parametrize("shape", [(40, 17, 23), (5, 7, 9), (16, 16, 16)])
def test_grid_weights_sum_to_the_separable_norms(shape):
    """The summed weights of every tile are the product of the three 1D sums, and there
    are ``count_tiles`` tiles."""
    grid = TileGrid(shape, 16, 6)
    total = torch.zeros(grid.padded, dtype=torch.float64)
    for t in grid.tiles():
        s0, s1, s2 = grid.corner(t)
        total[s0 : s0 + 16, s1 : s1 + 16, s2 : s2 + 16] += grid.weight(t)
    n0, n1, n2 = grid.norms
    torch.testing.assert_close(total, n0[:, None, None] * n1[None, :, None] * n2[None, None, :])
    assert len(grid.tiles()) == len(grid) == count_tiles(shape, 16, 6)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "constant"])
def test_padding_keeps_the_voxels_where_the_grid_says(mode):
    x = torch.randn(1, 1, 5, 4, 20)
    padded, keep = pad_to(x, 8, mode)
    assert padded.shape == (1, 1, 8, 8, 20)
    assert torch.equal(padded[..., keep[0], keep[1], keep[2]], x)
    assert [k.start for k in keep] == list(TileGrid((5, 4, 20), 8, 2).low)
    with pytest.raises(ValueError, match="padding_mode"):
        pad_to(x, 8, "mirror")
