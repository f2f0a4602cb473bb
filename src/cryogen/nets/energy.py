"""The energy model ``E`` of CryoGEN (the discriminator of the adversarial term).

Appendix A.6 of the paper: "The discriminator is composed of four 3D convolutional layers,
each using a 3 x 3 x 3 kernel.  Following the final convolutional layer, an adaptive average
pooling layer reduces the dimensions of the feature map to 1 x 1 x 1.  This output is then
flattened and fed into a series of three fully connected layers, with ReLU activations
between each layer.  The final layer produces a single output, which serves as the result
of binary classification."
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from cryogen.nets.unetpp import LayerArg, conv_classes, make_act, make_norm

__all__ = ["EnergyModel"]


class EnergyModel(nn.Module):
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
        super().__init__()
        conv_cls = conv_classes(spatial_dims)[0]
        features = tuple(int(f) for f in features)
        fc_features = tuple(int(f) for f in fc_features)
        if not features or any(f < 1 for f in features):
            raise ValueError(f"features must hold >= 1 positive widths, got {features}")
        if any(f < 1 for f in fc_features):
            raise ValueError(f"fc_features must be positive, got {fc_features}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive, got {in_channels}")
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.stride = int(stride)

        def wrap(layer: nn.Module) -> nn.Module:
            return _spectral_norm(layer) if spectral_norm else layer

        convs: list[nn.Module] = []
        c_in = in_channels
        for k, c_out in enumerate(features):
            convs.append(wrap(conv_cls(c_in, c_out, kernel_size=3, stride=stride, padding=1)))
            if k > 0:
                convs.append(make_norm(norm, c_out, spatial_dims))
            convs.append(make_act(act))
            c_in = c_out
        self.convs = nn.Sequential(*convs)
        pool_cls = nn.AdaptiveAvgPool3d if spatial_dims == 3 else nn.AdaptiveAvgPool2d
        self.pool = pool_cls(1)
        fcs: list[nn.Module] = []
        for width in fc_features:
            fcs += [wrap(nn.Linear(c_in, width)), nn.ReLU()]
            c_in = width
        fcs.append(wrap(nn.Linear(c_in, 1)))
        self.fc = nn.Sequential(*fcs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``x``: ``(B, in_channels, *spatial)`` -> ``(B,)``."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"EnergyModel expects (B, {self.in_channels}, "
                f"{', '.join(['*'] * self.spatial_dims)}), got {tuple(x.shape)}"
            )
        h = self.pool(self.convs(x)).flatten(1)  # (B, features[-1])
        return self.fc(h).squeeze(-1).to(x.dtype)  # (B,)
