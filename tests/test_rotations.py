"""The 24 cube rotations as voxel permutations, and the paper's 20."""

import itertools

import pytest
import torch

from cryogen.rotations import (
    CUBE_ROTATIONS,
    EXCLUDED_ROTATIONS,
    WEDGE_ROTATIONS,
    compose,
    inverse,
    rotate,
    rotate_box,
    rotate_inverse,
)
from cryogen.wedge import missing_wedge_mask


def test_counts():
    assert len(CUBE_ROTATIONS) == 24
    assert len(set(CUBE_ROTATIONS)) == 24
    assert len(WEDGE_ROTATIONS) == 20 and len(EXCLUDED_ROTATIONS) == 4
    assert set(WEDGE_ROTATIONS) | set(EXCLUDED_ROTATIONS) == set(range(24))


def test_proper_rotations():
    for r in CUBE_ROTATIONS:
        m = torch.tensor(r.matrix, dtype=torch.float64)
        assert torch.det(m).item() == pytest.approx(1.0)
        torch.testing.assert_close(m @ m.T, torch.eye(3, dtype=torch.float64))


@pytest.mark.parametrize("i", range(24))
def test_inverse_is_identity(i, device):
    x = torch.randn(2, 3, 9, 9, 9, device=device)
    assert torch.equal(rotate_inverse(rotate(x, i), i), x)
    assert torch.equal(rotate(rotate_inverse(x, i), i), x)
    assert compose(inverse(i), i) == 0


def test_closed_under_composition_and_group_table():
    table = [[compose(a, b) for b in range(24)] for a in range(24)]
    for row in table:  # Latin square: every product is one of the 24, each once per row
        assert sorted(row) == list(range(24))
    x = torch.randn(7, 7, 7)
    for a, b in itertools.product(range(24), repeat=2):
        assert torch.equal(rotate(rotate(x, b), a), rotate(x, table[a][b]))


def test_rotation_is_a_permutation_and_differentiable():
    x = torch.arange(5 * 5 * 5, dtype=torch.float32).reshape(5, 5, 5).requires_grad_()
    for i in range(24):
        y = rotate(x, i)
        assert torch.equal(y.detach().flatten().sort().values, x.detach().flatten())
    rotate(x, 7).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def _centred(shape, tilts):
    # odd size: fftshift puts DC at the centre voxel, so voxel rotations rotate frequencies
    return torch.fft.fftshift(missing_wedge_mask(shape, *tilts, rfft=False).contiguous())


def test_excluded_rotations_keep_the_wedge_and_the_20_change_it():
    m = _centred((15, 15, 15), (-60, 60))
    for i in EXCLUDED_ROTATIONS:
        assert torch.equal(rotate(m, i), m), i
    for i in WEDGE_ROTATIONS:
        assert not torch.equal(rotate(m, i), m), i


def test_rotating_a_volume_rotates_its_wedge():
    # T_M applied after a rotation equals the rotation of T_{R^-1 M}: check via spectra
    shape = (15, 15, 15)
    x = torch.randn(shape, dtype=torch.float64)
    for i in WEDGE_ROTATIONS[:5]:
        fx = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x)))
        fr = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(rotate(x, i))))
        torch.testing.assert_close(fr, rotate(fx, i))


@pytest.mark.parametrize("i", range(24))
def test_rotate_box_finds_the_rotated_box(i):
    """The box of the rotated cube at ``rotate_box(...)`` is the rotated box, for every
    rotation and a box that touches neither the centre nor a symmetric place."""
    cube = torch.randn(11, 11, 11)
    o, c = (1, 4, 6), 4
    box = cube[o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c]
    z, y, x = rotate_box(o, c, 11, i)
    moved = rotate(cube, i)[z : z + c, y : y + c, x : x + c]
    assert torch.equal(moved, rotate(box, i))


def test_rotate_box_refuses_a_box_outside_the_cube():
    with pytest.raises(ValueError, match="not inside"):
        rotate_box((0, 0, 5), 4, 8, 1)


def test_rotation_mean_of_an_equivariant_function_is_the_function():
    """``mean_R R^-1 f(R v) = f(v)`` when f commutes with every rotation (here: a voxelwise
    function); a function that does not (a shift along z) is changed; no rotation is an error."""
    from cryogen.rotations import rotation_mean

    v = torch.randn(2, 1, 6, 6, 6, generator=torch.Generator().manual_seed(0))
    square = lambda t: t * t  # noqa: E731
    torch.testing.assert_close(rotation_mean(square, v, range(24)), v * v)
    shift = lambda t: torch.roll(t, 1, dims=-3)  # noqa: E731
    assert not torch.allclose(rotation_mean(shift, v, (0, 2)), shift(v))  # 2 flips z
    torch.testing.assert_close(rotation_mean(shift, v, (0,)), shift(v))
    with pytest.raises(ValueError, match="at least one"):
        rotation_mean(square, v, ())
