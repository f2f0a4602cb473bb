"""Tests of the generator (U-Net++) and the energy model (discriminator)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from cryogen.nets import EnergyModel, UNetPlusPlus, count_parameters

SMALL = (4, 8, 16)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions are fastest on one thread, and OpenMP threads that spin on a
    shared, busy machine can make each forward 100x slower; restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _perturb_heads(net: UNetPlusPlus, std: float = 0.1) -> None:
    with torch.no_grad():
        for head in net.heads.values():
            head.weight.normal_(0.0, std)
            head.bias.normal_(0.0, std)


# ------------------------------------------------------------------------ generator shapes
@pytest.mark.parametrize(
    ("shape", "features", "norm", "upsample"),
    [
        ((2, 1, 33, 34, 35), SMALL, "instance", "deconv"),
        ((1, 1, 16, 16, 16), SMALL, None, "deconv"),
        ((1, 2, 20, 24, 28), SMALL, "batch", "trilinear"),
        ((3, 1, 9, 10, 11), (4, 8, 8, 16), "group", "deconv"),
        ((2, 1, 3, 5, 7), SMALL, None, "trilinear"),  # too small to reflect: replicate padding
        ((1, 1, 17, 8, 12), (4, 8), "instance", "deconv"),
    ],
)
def test_generator_output_shape_equals_input_shape(shape, features, norm, upsample, device):
    torch.manual_seed(0)
    net = UNetPlusPlus(
        in_channels=shape[1],
        out_channels=shape[1],
        features=features,
        norm=norm,
        upsample=upsample,
    ).to(device)
    _perturb_heads(net)
    x = torch.randn(shape, device=device)
    x_copy = x.clone()
    y = net(x)
    assert y.shape == x.shape
    assert y.dtype == x.dtype and y.device == x.device
    assert torch.equal(x, x_copy)  # the input is not modified in place
    assert torch.isfinite(y).all()


def test_generator_non_residual_channels():
    net = UNetPlusPlus(in_channels=1, out_channels=3, features=SMALL, residual=False)
    y = net(torch.randn(2, 1, 12, 13, 14))
    assert y.shape == (2, 3, 12, 13, 14)


def test_generator_2d():
    torch.manual_seed(0)
    net = UNetPlusPlus(spatial_dims=2, features=SMALL, norm="instance", upsample="trilinear")
    x = torch.randn(2, 1, 33, 34)
    assert torch.equal(net(x), x)
    _perturb_heads(net)
    assert net(x).shape == x.shape


# ------------------------------------------------------------------------ identity at init
@pytest.mark.parametrize("deep_supervision", [False, True])
@pytest.mark.parametrize("upsample", ["deconv", "trilinear"])
@pytest.mark.parametrize("shape", [(2, 1, 33, 34, 35), (1, 2, 20, 24, 28)])
def test_untrained_residual_generator_is_identity(deep_supervision, upsample, shape):
    net = UNetPlusPlus(
        in_channels=shape[1],
        out_channels=shape[1],
        features=SMALL,
        norm="instance",
        act=("leakyrelu", {"negative_slope": 0.1}),
        deep_supervision=deep_supervision,
        upsample=upsample,
    )
    x = torch.randn(shape)
    for mode in (True, False):
        net.train(mode)
        assert torch.equal(net(x), x)


# ------------------------------------------------------------------------ deep supervision
def test_deep_supervision_train_is_mean_of_heads_eval_is_last():
    torch.manual_seed(0)
    features = (4, 8, 16, 16)
    net = UNetPlusPlus(features=features, norm=None, deep_supervision=True)
    assert sorted(net.heads) == ["head1", "head2", "head3"]
    # perturb only the last head: the training output is the mean over the 3 heads,
    # two of which are still zero, so it is one third of the evaluation output's update
    with torch.no_grad():
        net.heads["head3"].weight.normal_(0.0, 0.1)
        net.heads["head3"].bias.fill_(0.05)
    x = torch.randn(2, 1, 17, 18, 19)
    net.train()
    y_train = net(x)
    net.eval()
    y_eval = net(x)
    assert y_train.shape == y_eval.shape == x.shape
    torch.testing.assert_close((y_train - x) * 3, y_eval - x, rtol=1e-4, atol=1e-5)


def test_deep_supervision_adds_exactly_the_extra_heads():
    base = UNetPlusPlus(features=(4, 8, 16, 32), out_channels=2, in_channels=2)
    ds = UNetPlusPlus(features=(4, 8, 16, 32), out_channels=2, in_channels=2, deep_supervision=True)
    head = 4 * 2 + 2  # 1x1x1 conv from features[0]=4 to 2 channels, with bias
    assert count_parameters(ds) - count_parameters(base) == 2 * head


# ------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("deep_supervision", [False, True])
@pytest.mark.parametrize("upsample", ["deconv", "trilinear"])
def test_gradients_reach_every_parameter(deep_supervision, upsample):
    torch.manual_seed(0)
    net = UNetPlusPlus(
        features=SMALL,
        norm="instance",
        dropout=0.1,
        deep_supervision=deep_supervision,
        upsample=upsample,
    )
    _perturb_heads(net)
    net.train()
    x = torch.randn(2, 1, 13, 14, 15)
    loss = ((net(x) - x.flip(-1)) ** 2).mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_zero_head_still_learns():
    """With the zero-initialised head, the head itself receives a gradient at step 0."""
    net = UNetPlusPlus(features=SMALL)
    x = torch.randn(1, 1, 16, 16, 16)
    ((net(x) - 2 * x) ** 2).mean().backward()
    assert net.heads["head2"].weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------ determinism
def test_eval_is_deterministic_train_dropout_is_not():
    torch.manual_seed(0)
    net = UNetPlusPlus(features=SMALL, norm="instance", dropout=0.5)
    _perturb_heads(net)
    x = torch.randn(1, 1, 12, 12, 12)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


def test_samples_are_processed_independently():
    """Instance norm and no batch statistics: g(x)[i] equals g(x[i]) alone."""
    torch.manual_seed(0)
    net = UNetPlusPlus(features=SMALL, norm="instance").eval()
    _perturb_heads(net)
    x = torch.randn(3, 1, 8, 9, 10)
    y = net(x)
    for i in range(3):
        torch.testing.assert_close(y[i : i + 1], net(x[i : i + 1]), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------ bad input
def test_generator_rejects_bad_arguments_and_input():
    with pytest.raises(ValueError, match="residual"):
        UNetPlusPlus(in_channels=2, out_channels=1)
    with pytest.raises(ValueError, match="spatial_dims"):
        UNetPlusPlus(spatial_dims=4)
    with pytest.raises(ValueError, match="activation"):
        UNetPlusPlus(act="nope")
    with pytest.raises(ValueError, match="norm"):
        UNetPlusPlus(norm="layer")
    with pytest.raises(ValueError, match="upsample"):
        UNetPlusPlus(upsample="pixelshuffle")
    with pytest.raises(ValueError, match="features"):
        UNetPlusPlus(features=(8,))
    net = UNetPlusPlus(features=SMALL)
    with pytest.raises(ValueError, match=r"\(1, 2, 8, 8, 8\)"):
        net(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match=r"\(8, 8, 8\)"):
        net(torch.zeros(8, 8, 8))


# ------------------------------------------------------------------------ parameter counts
def test_parameter_counts_grow_with_width_and_depth():
    n_small = count_parameters(UNetPlusPlus(features=(4, 8, 16)))
    n_wide = count_parameters(UNetPlusPlus(features=(8, 16, 32)))
    n_deep = count_parameters(UNetPlusPlus(features=(4, 8, 16, 32)))
    assert 0 < n_small < n_wide
    assert n_small < n_deep
    # a 3x3x3 conv dominates: doubling every width roughly quadruples the count
    assert 3.5 < n_wide / n_small < 4.5


def test_count_parameters_trainable_only():
    net = EnergyModel(features=(4, 8), fc_features=(8,))
    total = count_parameters(net)
    for p in net.fc.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in net.fc.parameters())
    assert count_parameters(net) == total
    assert count_parameters(net, trainable_only=True) == total - frozen


def test_energy_parameter_count_matches_formula():
    features, fc = (16, 32, 64, 64), (64, 32)
    net = EnergyModel(in_channels=1, features=features, fc_features=fc)
    expected, c_in = 0, 1
    for c in features:  # 3x3x3 kernels with bias
        expected += 27 * c_in * c + c
        c_in = c
    for w in (*fc, 1):  # linear layers with bias
        expected += c_in * w + w
        c_in = w
    assert count_parameters(net) == expected


# ------------------------------------------------------------------------ energy model
@pytest.mark.parametrize(
    ("shape", "stride", "norm"),
    [
        ((2, 1, 8, 8, 8), 2, None),
        ((3, 1, 33, 34, 35), 2, None),
        ((1, 1, 64, 64, 64), 2, "instance"),
        ((2, 2, 9, 11, 13), 1, "group"),
        ((4, 1, 16, 16, 16), 2, "batch"),
    ],
)
def test_energy_output_is_one_scalar_per_sample(shape, stride, norm, device):
    torch.manual_seed(0)
    net = EnergyModel(
        in_channels=shape[1], features=(4, 8, 8, 8), fc_features=(8, 4), norm=norm, stride=stride
    ).to(device)
    x = torch.randn(shape, device=device)
    y = net(x)
    assert y.shape == (shape[0],)
    assert y.dtype == x.dtype
    assert torch.isfinite(y).all()


def test_energy_samples_are_scored_independently():
    torch.manual_seed(0)
    net = EnergyModel(features=(4, 8, 8, 8), fc_features=(8, 4), norm="instance")
    x = torch.randn(3, 1, 20, 21, 22)
    y = net(x)
    for i in range(3):
        torch.testing.assert_close(y[i : i + 1], net(x[i : i + 1]), rtol=1e-4, atol=1e-5)


def test_energy_gradients_reach_every_parameter_and_the_input():
    torch.manual_seed(0)
    net = EnergyModel(features=(4, 8, 8, 8), fc_features=(8, 4))
    x = torch.randn(2, 1, 16, 16, 16, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_energy_spectral_norm_bounds_every_layer():
    """After power iterations, every wrapped layer's weight has largest singular value 1."""
    torch.manual_seed(0)
    net = EnergyModel(features=(4, 8, 8, 8), fc_features=(8, 4), spectral_norm=True)
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.Linear))]
    assert len(layers) == 4 + 3
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    x = torch.randn(1, 1, 8, 8, 8)
    net.train()
    for _ in range(30):  # each training forward runs one power iteration per layer
        net(x)
    net.eval()
    for m in layers:
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        sigma = torch.linalg.matrix_norm(w, ord=2)
        assert abs(float(sigma) - 1.0) < 0.05
    assert net(x).shape == (1,)


def test_energy_2d_and_bad_input():
    net = EnergyModel(spatial_dims=2, features=(4, 8, 8, 8), fc_features=())
    assert net(torch.randn(3, 1, 17, 19)).shape == (3,)
    with pytest.raises(ValueError, match="EnergyModel expects"):
        EnergyModel()(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="stride"):
        EnergyModel(stride=0)


# ------------------------------------------------------------------------ bf16 autocast
def test_bf16_autocast_forward_matches_fp32():
    torch.manual_seed(0)
    g = UNetPlusPlus(features=(8, 16, 32), norm="instance").eval()
    _perturb_heads(g, std=0.3)
    e = EnergyModel(features=(8, 16, 16, 16), fc_features=(16, 8), spectral_norm=True).eval()
    x = torch.randn(2, 1, 13, 14, 15)
    with torch.no_grad():
        y32, s32 = g(x), e(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16, s16 = g(x), e(x)
    assert y16.dtype == torch.float32 and y16.shape == x.shape
    assert s16.dtype == torch.float32 and s16.shape == (2,)
    # bf16 has ~3 significant digits: compare the learned update g(x) - x
    d32, d16 = y32 - x, y16 - x
    assert (d16 - d32).norm() / d32.norm() < 0.05
    assert (s16 - s32).abs().max() < 0.05 * s32.abs().max() + 1e-3


def test_bf16_autocast_backward_runs():
    torch.manual_seed(0)
    g = UNetPlusPlus(features=SMALL, norm="instance")
    _perturb_heads(g)
    x = torch.randn(1, 1, 12, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ((g(x) - x) ** 2).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


# ------------------------------------------------------------------------ plain U-Net
def _plain_unet_param_count(features: tuple[int, ...]) -> int:
    """Parameters of the plain U-Net (``nested=False``), counted from its definition."""

    def block(c_in: int, c_out: int) -> int:  # two 3^3 convolutions with bias
        return 27 * c_in * c_out + c_out + 27 * c_out * c_out + c_out

    n = sum(block(1 if i == 0 else features[i - 1], f) for i, f in enumerate(features))
    for i in range(len(features) - 1):  # decoder level i: deconv 2^3, then a block on 2 f_i
        n += 8 * features[i + 1] * features[i] + features[i]
        n += block(2 * features[i], features[i])
    return n + features[0] + 1  # 1x1x1 head


@pytest.mark.parametrize("features", [(4, 8), (4, 8, 16), (16, 32, 64, 128)])
def test_plain_unet_has_only_the_diagonal_decoder_nodes(features):
    net = UNetPlusPlus(features=features, norm=None, nested=False)
    depth = len(features)
    decoder = {k for k in net.nodes if not k.endswith("_0")}
    assert decoder == {f"x{i}_{depth - 1 - i}" for i in range(depth - 1)}
    assert count_parameters(net) == _plain_unet_param_count(features)
    nested = UNetPlusPlus(features=features, norm=None)
    assert depth == 2 or count_parameters(nested) > count_parameters(net)
    if features == (16, 32, 64, 128):  # the 1.4 M-parameter plain U-Net, counted by hand:
        # encoder 878,736 + deconvs 86,128 + decoder blocks 435,680 + head 17
        assert count_parameters(net) == 1_400_561


def test_plain_unet_forward_is_the_u_net_wiring():
    """Recompute the forward pass by hand from the modules: X^{i,0} down the encoder,
    then up the decoder with the encoder node of the same level as the only skip."""
    torch.manual_seed(0)
    net = UNetPlusPlus(features=SMALL, norm=None, nested=False)
    _perturb_heads(net)
    x = torch.randn(2, 1, 16, 12, 8)
    enc = [net.nodes["x0_0"](x)]
    for i in (1, 2):
        enc.append(net.nodes[f"x{i}_0"](torch.nn.functional.max_pool3d(enc[-1], 2)))
    d1 = net.nodes["x1_1"](torch.cat([enc[1], net.ups["up1_1"](enc[2])], 1))
    d0 = net.nodes["x0_2"](torch.cat([enc[0], net.ups["up0_2"](d1)], 1))
    expected = x + net.heads["head2"](d0)
    assert torch.allclose(net(x), expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 9, 10, 11), (2, 1, 16, 16, 16)])
def test_plain_unet_untrained_is_identity_and_trains_every_parameter(shape):
    torch.manual_seed(0)
    net = UNetPlusPlus(features=SMALL, norm="instance", nested=False, upsample="trilinear")
    x = torch.randn(shape)
    assert torch.equal(net(x), x)
    _perturb_heads(net)
    ((net(x) - 2 * x) ** 2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    with pytest.raises(ValueError, match="deep_supervision needs nested=True"):
        UNetPlusPlus(features=SMALL, nested=False, deep_supervision=True)
