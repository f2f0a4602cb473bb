"""The helpers of :mod:`cryogen.distributed` in a single process (rank 0 of 1), and the
sharing of tiles: two ranks' partial blends add up to the whole."""

import numpy as np
import pytest
import torch

from cryogen import distributed
from cryogen.tiling import sliding_window_inference


def test_helpers_single_process():
    assert distributed.shard(list(range(7)), 1, 3) == [1, 4]
    parts = [distributed.shard(list(range(7)), r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(7))
    blocks = [distributed.shard_range(10, r, 4) for r in range(4)]
    assert [len(b) for b in blocks] == [3, 3, 2, 2]
    assert [i for b in blocks for i in b] == list(range(10))
    ctx = distributed.current()
    assert ctx.world_size == 1 and ctx.is_main and distributed.is_main()
    assert distributed.step_sync(1.5, False, {"a": 2.0}) == (1.5, False, {"a": 2.0})
    assert distributed.any_flag(True) and not distributed.broadcast_flag(False)
    assert distributed.gather_objects({"x": 1}) == [{"x": 1}]
    assert distributed.wrap_ddp(torch.nn.Linear(2, 2)) is None
    # rank 0 keeps the single-process stream; others are independent of it and of each other
    s0 = distributed.rank_seed_sequence(5, 0).generate_state(4)
    assert np.array_equal(s0, np.random.SeedSequence(5).generate_state(4))
    s1 = distributed.rank_seed_sequence(5, 1).generate_state(4)
    s1b = distributed.rank_seed_sequence(5, 1, step=100).generate_state(4)
    assert not np.array_equal(s0, s1) and not np.array_equal(s1, s1b)
    assert distributed.rank_seed(7, 0) == 7 and distributed.rank_seed(7, 1) != 7


@pytest.mark.parametrize("shape", [(21, 26, 19), (2, 17, 20, 13)])
def test_shard_predictor_sums_to_the_whole(shape):
    """The partial blends of two ranks add up to the single-process blend."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def f(t):
        return t.square() + 1.0

    whole = sliding_window_inference(x, f, roi_size=12, overlap=4, sw_batch_size=2)
    parts = [
        sliding_window_inference(
            x, distributed.shard_predictor(f, r, 2), roi_size=12, overlap=4, sw_batch_size=2
        )
        for r in range(2)
    ]
    assert not torch.allclose(parts[0], whole)  # each rank did only part of the work
    torch.testing.assert_close(parts[0] + parts[1], whole, rtol=1e-6, atol=1e-6)
