"""Sliding-window inference over a volume of any shape, independent of the model.

A volume ``(..., z, y, x)`` is covered by cubic tiles of edge ``roi_size`` that overlap by at
least ``overlap`` voxels; each tile goes through ``predictor`` (in batches of
``sw_batch_size``) and the outputs are blended with weights that taper smoothly (raised
cosine) inside the overlaps and stay at 1 at the volume's faces, so there are no seams and
an identity predictor returns its input.  Axes shorter than ``roi_size`` are padded
(reflection by default) and cropped back.  Compare MONAI's ``sliding_window_inference``.

* :mod:`~cryogen.tiling.grid`: the tile grid, the weights, the padding, and cutting tiles
  out of a volume in memory or read slab by slab (the splitter).
* :mod:`~cryogen.tiling.mergers`: blending the predictions into a volume in memory, or
  into slabs handed to a ``write`` callable as soon as they are finished (bounded memory).
* :mod:`~cryogen.tiling.loop`: the one loop, and the two entry points
  :func:`sliding_window_inference` (in memory) and :func:`sliding_window_stream` (slab by
  slab along the first axis, memory bounded by ``roi_size x n1 x n2`` voxels).
"""

from cryogen.tiling.grid import blend_weights_1d, count_tiles, tile_starts
from cryogen.tiling.loop import sliding_window_inference, sliding_window_stream

__all__ = [
    "sliding_window_inference",
    "sliding_window_stream",
    "count_tiles",
    "tile_starts",
    "blend_weights_1d",
]
