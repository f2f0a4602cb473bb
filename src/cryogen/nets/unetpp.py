"""The generator ``g`` of CryoGEN: a nested U-Net (U-Net++).

Appendix A.6 of the paper (CryoGEN, following struc2mapGAN, Zhang et al. 2024) uses
"a modified U-Net architecture, known as U-Net++, which enhances the standard U-Net with
dense skip connections" (Zhou et al. 2018, *UNet++: A Nested U-Net Architecture for Medical
Image Segmentation*, DLMIA 2018, arXiv:1807.10165).

The module also holds the small layer factories (activation, normalisation, convolution
classes per ``spatial_dims``) that :mod:`cryogen.nets.energy` shares.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetPlusPlus", "count_parameters"]

logger = logging.getLogger(__name__)

#: An activation or normalisation given as a name, or as ``(name, keyword arguments)``.
LayerArg = str | tuple[str, dict[str, Any]] | None

_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
}
_NORMS = ("instance", "batch", "group")


# ----------------------------------------------------------------------------- factories
def _split_arg(arg: LayerArg, what: str) -> tuple[str | None, dict[str, Any]]:
    """``"name"`` or ``("name", {kwargs})`` or ``None`` -> ``(lower-case name, kwargs)``."""
    if arg is None:
        return None, {}
    if isinstance(arg, str):
        name, kwargs = arg, {}
    elif (
        isinstance(arg, (tuple, list))
        and len(arg) == 2
        and isinstance(arg[0], str)
        and isinstance(arg[1], dict)
    ):
        name, kwargs = arg[0], dict(arg[1])
    else:
        raise ValueError(f"{what} must be a name or a (name, kwargs) pair, got {arg!r}")
    name = name.lower().replace("_", "").replace("-", "")
    if name == "none":
        return None, {}
    return name, kwargs


def make_act(act: LayerArg) -> nn.Module:
    """An activation module from ``"relu" | "leakyrelu" | "prelu" | "gelu" | "elu" | "silu"``.

    ``("leakyrelu", {"negative_slope": 0.1})`` passes keyword arguments; ``None`` or
    ``"none"`` gives :class:`torch.nn.Identity`.  ``leakyrelu`` uses PyTorch's default
    slope 0.01 unless told otherwise.
    """
    name, kwargs = _split_arg(act, "act")
    if name is None:
        return nn.Identity()
    if name not in _ACTS:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(_ACTS)} or None")
    return _ACTS[name](**kwargs)


def make_norm(norm: LayerArg, channels: int, spatial_dims: int) -> nn.Module:
    """A normalisation layer for ``channels`` feature maps.

    ``"instance"`` (affine), ``"batch"``, ``"group"`` (``num_groups`` = the largest of
    8, 4, 2, 1 that divides ``channels`` unless given, e.g. ``("group", {"num_groups": 4})``),
    or ``None`` / ``"none"`` for :class:`torch.nn.Identity`.
    """
    name, kwargs = _split_arg(norm, "norm")
    if name is None:
        return nn.Identity()
    if name == "instance":
        kwargs.setdefault("affine", True)
        if spatial_dims == 3:
            return nn.InstanceNorm3d(channels, **kwargs)
        return nn.InstanceNorm2d(channels, **kwargs)
    if name == "batch":
        if spatial_dims == 3:
            return nn.BatchNorm3d(channels, **kwargs)
        return nn.BatchNorm2d(channels, **kwargs)
    if name == "group":
        groups = kwargs.pop("num_groups", None)
        if groups is None:
            groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        if channels % groups:
            raise ValueError(f"group norm: {channels} channels not divisible by {groups} groups")
        return nn.GroupNorm(groups, channels, **kwargs)
    raise ValueError(f"unknown norm {norm!r}; choose one of {list(_NORMS)} or None")


def conv_classes(spatial_dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    """``(Conv, ConvTranspose, MaxPool)`` classes for 2 or 3 spatial dimensions."""
    if spatial_dims == 3:
        return nn.Conv3d, nn.ConvTranspose3d, nn.MaxPool3d
    if spatial_dims == 2:
        return nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------- blocks
class _ConvBlock(nn.Sequential):
    """Two ``3^d`` convolutions, each followed by norm, activation and (optional) dropout."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        norm: LayerArg,
        act: LayerArg,
        dropout: float,
    ) -> None:
        conv_cls = conv_classes(spatial_dims)[0]
        norm_name = _split_arg(norm, "norm")[0]
        # a bias in front of instance/batch norm is removed by the normalisation anyway
        bias = norm_name not in ("instance", "batch")
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(conv_cls(c_in, out_channels, kernel_size=3, padding=1, bias=bias))
            layers.append(make_norm(norm, out_channels, spatial_dims))
            layers.append(make_act(act))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class UNetPlusPlus(nn.Module):
    """U-Net++ generator: a U-Net with nested, densely connected skip pathways.

    The generator ``g`` of CryoGEN (paper, appendix A.6), after Zhou et al. (2018),
    *UNet++: A Nested U-Net Architecture for Medical Image Segmentation* (arXiv:1807.10165).
    Node ``X^{i,j}`` (level ``i = 0..depth-1``, column ``j``) is

    * ``X^{i,0} = block(down(X^{i-1,0}))`` (``X^{0,0} = block(input)``), the encoder;
    * ``X^{i,j} = block(cat[X^{i,0}, ..., X^{i,j-1}, up(X^{i+1,j-1})])`` for ``j >= 1``,

    with ``depth = len(features)``, ``down`` a 2x max pool, ``block`` two ``3^d``
    convolutions each followed by ``norm``, ``act`` and dropout, and ``up`` either a
    learned 2x transposed convolution to ``features[i]`` channels (``"deconv"``) or a
    2x (tri/bi)linear interpolation keeping ``features[i+1]`` channels (``"trilinear"``).
    A ``1^d`` convolution head maps ``X^{0,depth-1}`` to ``out_channels``.

    Parameters
    ----------
    spatial_dims
        3 (volumes, ``Conv3d``) or 2 (images, ``Conv2d``).
    in_channels, out_channels
        Channels of the input and of the output.  ``residual=True`` needs them equal.
    features
        Channel widths per level, e.g. ``(16, 32, 64, 128)``; ``depth = len(features) >= 2``.
    norm
        ``"instance"`` | ``"batch"`` | ``"group"`` | ``None``, or ``(name, kwargs)``.
    act
        ``"leakyrelu"`` | ``"relu"`` | ``"prelu"`` | ``"gelu"`` | ``"elu"`` | ``"silu"``,
        or ``(name, kwargs)`` such as ``("leakyrelu", {"negative_slope": 0.1})``.
    dropout
        Element-wise dropout probability after every activation (0 disables it).
    deep_supervision
        Put a head on every ``X^{0,j}``, ``j = 1..depth-1``.  In training mode the output is
        the **mean** of the heads' predictions (one tensor, so the loss is unchanged); in
        eval mode only the last head (on ``X^{0,depth-1}``) is used.
    residual
        Output ``input + head(...)`` with the head(s) **zero-initialised**, so the untrained
        network is exactly the identity (this trains much better for restoration).
        Without it the output is ``head(...)`` with PyTorch's default initialisation.
    upsample
        ``"deconv"`` (transposed convolution) or ``"trilinear"`` (interpolation; bilinear
        in 2D; ``"bilinear"``/``"linear"`` are accepted as synonyms).
    nested
        ``True`` (default): the U-Net++ grid above.  ``False``: the plain U-Net of
        Ronneberger et al. (2015) with the same encoder, blocks and head -- only the decoder
        nodes ``X^{i,depth-1-i}``, each fed ``cat[X^{i,0}, up(X^{i+1,depth-2-i})]``.  No deep
        supervision then (there is one head).

    Shapes
    ------
    Input ``(B, in_channels, *spatial)`` of any spatial size (odd and non-cubic included),
    output ``(B, out_channels, *spatial)``.  Internally the input is padded (reflection,
    or replication where a side is too small to reflect) to a multiple of
    ``2 ** (depth - 1)`` per axis, centred, and the output is cropped back.  The output
    has the input's dtype, also under ``torch.autocast``.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (16, 32, 64, 128),
        norm: LayerArg = "instance",
        act: LayerArg = "leakyrelu",
        dropout: float = 0.0,
        deep_supervision: bool = False,
        residual: bool = True,
        upsample: str = "deconv",
        nested: bool = True,
    ) -> None:
        super().__init__()
        conv_cls, deconv_cls, pool_cls = conv_classes(spatial_dims)
        features = tuple(int(f) for f in features)
        if len(features) < 2 or any(f < 1 for f in features):
            raise ValueError(f"features must hold >= 2 positive widths, got {features}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channels must be positive, got {in_channels=}, {out_channels=}")
        if residual and in_channels != out_channels:
            raise ValueError(
                f"residual=True needs in_channels == out_channels, got {in_channels} and "
                f"{out_channels}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if deep_supervision and not nested:
            raise ValueError("deep_supervision needs nested=True (a plain U-Net has one head)")
        mode = upsample.lower()
        if mode in ("trilinear", "bilinear", "linear"):
            mode = "linear"
        elif mode != "deconv":
            raise ValueError(f"upsample must be 'deconv' or 'trilinear', got {upsample!r}")
        # validate the layer names once, with a clear message
        make_act(act)
        make_norm(norm, features[0], spatial_dims)

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.features = features
        self.depth = len(features)
        self.deep_supervision = deep_supervision
        self.nested = bool(nested)
        self.residual = residual
        self.upsample = "deconv" if mode == "deconv" else "trilinear"
        self._interp = "trilinear" if spatial_dims == 3 else "bilinear"

        depth = self.depth
        self.pool = pool_cls(kernel_size=2, stride=2)
        self.nodes = nn.ModuleDict()
        self.ups = nn.ModuleDict()
        for i in range(depth):
            c_in = in_channels if i == 0 else features[i - 1]
            self.nodes[f"x{i}_0"] = _ConvBlock(spatial_dims, c_in, features[i], norm, act, dropout)
        for j in range(1, depth):
            for i in self._column(j):
                if mode == "deconv":
                    self.ups[f"up{i}_{j}"] = deconv_cls(
                        features[i + 1], features[i], kernel_size=2, stride=2
                    )
                    c_up = features[i]
                else:
                    c_up = features[i + 1]
                c_in = (j if self.nested else 1) * features[i] + c_up
                self.nodes[f"x{i}_{j}"] = _ConvBlock(
                    spatial_dims, c_in, features[i], norm, act, dropout
                )
        head_cols = range(1, depth) if deep_supervision else [depth - 1]
        self.heads = nn.ModuleDict(
            {f"head{j}": conv_cls(features[0], out_channels, kernel_size=1) for j in head_cols}
        )
        if residual:
            for head in self.heads.values():
                assert isinstance(head, (nn.Conv3d, nn.Conv2d)) and head.bias is not None
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    # ------------------------------------------------------------------------- helpers
    @property
    def multiple(self) -> int:
        """Spatial sizes are padded internally to a multiple of this (``2 ** (depth-1)``)."""
        return 2 ** (self.depth - 1)

    def _column(self, j: int) -> range:
        """Levels ``i`` of the decoder nodes ``X^{i,j}`` in column ``j >= 1``."""
        if self.nested:
            return range(self.depth - j)
        return range(self.depth - 1 - j, self.depth - j)  # the one node on the diagonal

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, list[slice]]:
        m = self.multiple
        sizes = x.shape[2:]
        extra = [(-s) % m for s in sizes]
        if not any(extra):
            return x, [slice(None)] * len(sizes)
        pad: list[int] = []  # F.pad wants (last_lo, last_hi, ..., first_lo, first_hi)
        for e in reversed(extra):
            pad += [e // 2, e - e // 2]
        can_reflect = all(e - e // 2 < s for e, s in zip(extra, sizes, strict=True))
        x = F.pad(x, pad, mode="reflect" if can_reflect else "replicate")
        crop = [slice(e // 2, e // 2 + s) for e, s in zip(extra, sizes, strict=True)]
        return x, crop

    def _up(self, i: int, j: int, x: torch.Tensor) -> torch.Tensor:
        if self.upsample == "deconv":
            return self.ups[f"up{i}_{j}"](x)
        return F.interpolate(x, scale_factor=2.0, mode=self._interp, align_corners=False)

    # ------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x``: ``(B, in_channels, *spatial)`` -> ``(B, out_channels, *spatial)``."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNetPlusPlus expects (B, {self.in_channels}, "
                f"{', '.join(['*'] * self.spatial_dims)}), got {tuple(x.shape)}"
            )
        xp, crop = self._pad(x)
        depth = self.depth
        grid: list[list[torch.Tensor]] = [[] for _ in range(depth)]  # grid[i][j] = X^{i,j}
        grid[0].append(self.nodes["x0_0"](xp))
        for i in range(1, depth):
            grid[i].append(self.nodes[f"x{i}_0"](self.pool(grid[i - 1][0])))
        # column by column: X^{i,j} needs X^{i,0..j-1} and X^{i+1,j-1}
        # plain U-Net: grid[i] = [X^{i,0}, X^{i,depth-1-i}], the skip is X^{i,0} alone
        for j in range(1, depth):
            for i in self._column(j):
                up = self._up(i, j, grid[i + 1][-1])
                skips = grid[i][:j] if self.nested else grid[i][:1]
                cat = torch.cat([*skips, up.to(grid[i][0].dtype)], dim=1)
                grid[i].append(self.nodes[f"x{i}_{j}"](cat))
        if self.deep_supervision and self.training:
            outs = [self.heads[f"head{j}"](grid[0][j]) for j in range(1, depth)]
            y = torch.stack(outs).mean(0)
        else:
            y = self.heads[f"head{depth - 1}"](grid[0][-1])
        idx = (slice(None), slice(None), *crop)
        y = y[idx]
        if self.residual:
            y = x + y
        return y.to(x.dtype)
