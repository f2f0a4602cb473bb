"""The energy model ``E`` of CryoGEN (the discriminator of the adversarial term).

Appendix A.6 of the paper: "The discriminator is composed of four 3D convolutional layers,
each using a 3 x 3 x 3 kernel.  Following the final convolutional layer, an adaptive average
pooling layer reduces the dimensions of the feature map to 1 x 1 x 1.  This output is then
flattened and fed into a series of three fully connected layers, with ReLU activations
between each layer.  The final layer produces a single output, which serves as the result
of binary classification."

Two heads on that stack: :class:`EnergyModel` pools the features of the whole input and
classifies them (global: with stride 2 throughout a 31-voxel receptive field and a 4^3
grid on a 56^3 input, so it can read crop faces, global shape and orientation);
:class:`LocalEnergyModel` scores every position of a small receptive field and averages
the scores (a local texture critic, as the struc2mapGAN discriminator the paper cites).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from cryogen.nets.unetpp import LayerArg, conv_classes, make_act, make_norm

__all__ = ["EnergyModel", "LocalEnergyModel", "local_strides"]


class _ConvCritic(nn.Module):
    """What both energy models share: the checked settings, the optional spectral
    normalisation, and the stack of ``3^d`` convolutions (each followed by ``norm``, all but
    the first, DCGAN-style, and ``act``)."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        features: Sequence[int],
        fc_features: Sequence[int],
        act: LayerArg,
        norm: LayerArg,
        spectral_norm: bool,
        strides: Sequence[int],
        padding: int,
    ) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        if not features or any(f < 1 for f in features):
            raise ValueError(f"features must hold >= 1 positive widths, got {features}")
        if any(int(f) < 1 for f in fc_features):
            raise ValueError(f"fc_features must be positive, got {tuple(fc_features)}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive, got {in_channels}")
        if any(int(s) < 1 for s in strides):
            raise ValueError(f"stride must be >= 1, got {min(strides)}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.use_spectral_norm = spectral_norm
        self.conv_cls = conv_classes(spatial_dims)[0]
        layers: list[nn.Module] = []
        c_in = in_channels
        for k, (c_out, s) in enumerate(zip(features, strides, strict=True)):
            conv = self.conv_cls(c_in, c_out, kernel_size=3, stride=int(s), padding=padding)
            layers.append(self.wrap(conv))
            if k > 0:
                layers.append(make_norm(norm, c_out, spatial_dims))
            layers.append(make_act(act))
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.out_channels = c_in

    def wrap(self, layer: nn.Module) -> nn.Module:
        """``layer`` with spectral normalisation where the model uses it."""
        return _spectral_norm(layer) if self.use_spectral_norm else layer

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse an input of the wrong rank or channel count."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects (B, {self.in_channels}, "
                f"{', '.join(['*'] * self.spatial_dims)}), got {tuple(x.shape)}"
            )


class EnergyModel(_ConvCritic):
    """Convolutional energy model: one scalar per sample.

    ``len(features)`` convolutions of kernel ``3^d`` (padding 1, stride ``stride``), each
    followed by a normalisation (every convolution but the first, DCGAN-style; none by
    default) and ``act``; adaptive average pooling to ``1^d``; flatten; fully connected
    layers of widths ``fc_features`` with ReLU between them and a last one to 1 output.
    The defaults are the paper's four convolutions and three fully connected layers.

    The paper does not give the strides; the default ``stride=2`` in every convolution
    divides the cost by about 8 per layer (a 64^3 input is seen at 32^3, 16^3, 8^3, 4^3).
    ``stride=1`` keeps the full resolution throughout (struc2mapGAN's choice, expensive).

    Parameters
    ----------
    spatial_dims
        3 (volumes) or 2 (images).
    in_channels
        Channels of the input.
    features
        Output channels of the convolutions, e.g. ``(16, 32, 64, 64)``.
    fc_features
        Hidden widths of the fully connected layers (may be empty: then a single linear
        layer ``features[-1] -> 1``).
    act
        Activation after each convolution: a name or ``(name, kwargs)``
        (see :func:`cryogen.nets.unetpp.make_act`).
    norm
        ``None`` | ``"instance"`` | ``"batch"`` | ``"group"``.  Instance normalisation
        needs more than one voxel per channel after the strides.
    spectral_norm
        Wrap every convolution and linear layer with
        :func:`torch.nn.utils.parametrizations.spectral_norm` (Lipschitz control).
    stride
        Stride of every convolution (>= 1).

    Shapes
    ------
    Input ``(B, in_channels, *spatial)`` with any spatial size (>= 8 per axis is the
    intended use; smaller sizes work without normalisation); output ``(B,)`` in the
    input's dtype (also under ``torch.autocast``): a logit for the binary cross-entropy
    loss of the paper, or an energy / critic value for hinge or WGAN losses.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        features: Sequence[int] = (16, 32, 64, 64),
        fc_features: Sequence[int] = (64, 32),
        act: LayerArg = "leakyrelu",
        norm: LayerArg = None,
        spectral_norm: bool = False,
        stride: int = 2,
    ) -> None:
        strides = [int(stride)] * len(tuple(features))
        super().__init__(
            spatial_dims, in_channels, features, fc_features, act, norm, spectral_norm, strides, 1
        )
        self.stride = int(stride)
        pool_cls = nn.AdaptiveAvgPool3d if spatial_dims == 3 else nn.AdaptiveAvgPool2d
        self.pool = pool_cls(1)
        fcs: list[nn.Module] = []
        c_in = self.out_channels
        for width in fc_features:
            fcs += [self.wrap(nn.Linear(c_in, int(width))), nn.ReLU()]
            c_in = int(width)
        fcs.append(self.wrap(nn.Linear(c_in, 1)))
        self.fc = nn.Sequential(*fcs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``x``: ``(B, in_channels, *spatial)`` -> ``(B,)``."""
        self.check_input(x)
        h = self.pool(self.convs(x)).flatten(1)  # (B, features[-1])
        return self.fc(h).squeeze(-1).to(x.dtype)  # (B,)


def local_strides(n_convs: int, stride: int = 2) -> list[int]:
    """The strides of :class:`LocalEnergyModel`'s convolutions: 1 for the first (full
    resolution), ``stride`` for the next two, 1 for the rest."""
    return [1] + [stride] * min(2, n_convs - 1) + [1] * max(0, n_convs - 3)


class LocalEnergyModel(_ConvCritic):
    """Local energy model: a score per position of a small receptive field, averaged.

    ``len(features)`` unpadded convolutions of kernel ``3^d`` with the strides of
    :func:`local_strides` (1, ``stride``, ``stride``, 1, ...), each followed by a
    normalisation (every convolution but the first) and ``act``; then ``1^d`` convolutions
    of widths ``fc_features`` with ReLU between them and a last one to 1 channel: a score
    map; its mean over the positions is the sample's score.  Unpadded, no position sees
    past the input's faces, so the score cannot read where the crop ends; with the defaults
    (four convolutions, stride 2) each position sees 17^3 voxels.

    Parameters are those of :class:`EnergyModel` (``fc_features`` are the widths of the
    per-position head); ``norm="instance"`` gives the struc2mapGAN critic's normalisation.

    Shapes
    ------
    Input ``(B, in_channels, *spatial)`` with every spatial size at least
    :attr:`min_size`; output ``(B,)`` in the input's dtype.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        features: Sequence[int] = (8, 16, 32, 32),
        fc_features: Sequence[int] = (32, 16),
        act: LayerArg = "leakyrelu",
        norm: LayerArg = None,
        spectral_norm: bool = False,
        stride: int = 2,
    ) -> None:
        strides = local_strides(len(tuple(features)), int(stride))
        super().__init__(
            spatial_dims, in_channels, features, fc_features, act, norm, spectral_norm, strides, 0
        )
        self.strides = strides
        head: list[nn.Module] = []
        c_in = self.out_channels
        for width in fc_features:
            head += [self.wrap(self.conv_cls(c_in, int(width), kernel_size=1)), nn.ReLU()]
            c_in = int(width)
        head.append(self.wrap(self.conv_cls(c_in, 1, kernel_size=1)))
        self.head = nn.Sequential(*head)
        # receptive field, and the least input that leaves one position
        rf, jump, least = 1, 1, 1
        for s in strides:
            rf, jump = rf + 2 * jump, jump * s
        for s in reversed(strides):
            least = (least - 1) * s + 3
        self.receptive_field, self.min_size = rf, least

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """Per-position scores ``(B, 1, *positions)``."""
        self.check_input(x)
        if min(x.shape[2:]) < self.min_size:
            raise ValueError(
                f"LocalEnergyModel needs inputs of at least {self.min_size} voxels per axis, "
                f"got {tuple(x.shape[2:])}: use larger crops or a smaller adv_margin"
            )
        return self.head(self.convs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``x``: ``(B, in_channels, *spatial)`` -> ``(B,)``, the mean of the map."""
        return self.score_map(x).flatten(1).mean(1).to(x.dtype)
