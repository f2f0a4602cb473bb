"""The missing-wedge mask ``M`` and the operator ``T_M`` of the paper.

Conventions (``shared/CONVENTIONS.md``): arrays are ``(z, y, x)``, the beam runs along
``z`` and the tilt axis is ``y``.  A tilt by ``t`` samples the central Fourier plane with
normal ``(sin t, 0, cos t)`` in ``(x, y, z)``, so a frequency ``(kz, ky, kx)`` is measured
when the angle ``t`` with ``tan t = -kz / kx`` (folded into ``(-90, 90]``) lies inside the
tilt range.  The mask is therefore constant along ``ky`` and the *missing* wedge is a wedge
around the ``kz`` axis.  The DC term and the whole ``kz = kx = 0`` line are always kept.

``missing_wedge_mask`` returns ``M``: 1 where Fourier space was measured, 0 inside the
missing wedge.  ``wedge_operator(x, M) = real(ifftn(M * fftn(x)))`` is ``T_M``.  With a
binary mask it is linear, idempotent and self-adjoint; the mask is built exactly
Hermitian-symmetric (Nyquist planes included) so the output is real without discarding
anything.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

__all__ = [
    "cosine_taper",
    "missing_wedge_mask",
    "guarded_wedge_mask",
    "wedge_operator",
    "apply_missing_wedge",
    "kept_fraction",
    "wedge_symmetries",
]


def _check_range(tilt_min: float, tilt_max: float) -> None:
    if not (-90.0 <= tilt_min < tilt_max <= 90.0):
        raise ValueError(
            "tilt range must satisfy -90 <= tilt_min < tilt_max <= 90, "
            f"got [{tilt_min}, {tilt_max}]"
        )


def _angles_deg(kz: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """Angle ``t`` (degrees) of ``tan t = -kz / kx``, folded into ``(-90, 90]``."""
    t = torch.rad2deg(torch.atan2(-kz, kx))
    t = torch.where(t > 90.0, t - 180.0, t)
    t = torch.where(t <= -90.0, t + 180.0, t)
    return t


def _kept(
    kz: torch.Tensor,
    kx: torch.Tensor,
    tilt_min: float,
    tilt_max: float,
    soft_edge: float,
    nz: int,
    nx: int,
) -> torch.Tensor:
    t = _angles_deg(kz, kx)
    dc = (kz == 0) & (kx == 0)
    if soft_edge <= 0:
        inside = (t >= tilt_min - 1e-9) & (t <= tilt_max + 1e-9)
        return (inside | dc).to(torch.float64)
    # Distance (in Fourier pixels) of each frequency from the kept sector, measured in the
    # kz-kx plane; a raised-cosine taper over ``soft_edge`` pixels outside it.
    below = (tilt_min - t).clamp(min=0.0)
    above = (t - tilt_max).clamp(min=0.0)
    # angular distance also wraps through +-90 (the kz axis)
    wrap_lo = (t + 180.0 - tilt_max).clamp(min=0.0)  # distance to tilt_max going through -90
    wrap_hi = (tilt_min + 180.0 - t).clamp(min=0.0)
    dang = torch.minimum(torch.maximum(below, above), torch.minimum(wrap_lo, wrap_hi))
    r = torch.sqrt((kz * nz) ** 2 + (kx * nx) ** 2)
    dist = r * torch.sin(torch.deg2rad(dang.clamp(max=90.0)))
    taper = torch.where(
        dist >= soft_edge,
        torch.zeros_like(dist),
        0.5 * (1.0 + torch.cos(math.pi * dist / soft_edge)),
    )
    taper = torch.where(dang <= 0, torch.ones_like(taper), taper)
    return torch.where(dc, torch.ones_like(taper), taper)


def missing_wedge_mask(
    shape: tuple[int, int, int] | torch.Size,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
    *,
    rfft: bool = True,
    soft_edge: float = 0.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Fourier mask ``M`` of a single-axis tilt series: 1 where measured, 0 in the wedge.

    Parameters
    ----------
    shape
        Real-space volume shape ``(z, y, x)``.
    tilt_min, tilt_max
        Tilt range in degrees; asymmetric ranges such as ``(-54, 62)`` are allowed.
    rfft
        Return the half spectrum matching ``torch.fft.rfftn`` (shape ``(z, y, x // 2 + 1)``)
        rather than the full spectrum of ``torch.fft.fftn`` (shape ``(z, y, x)``).  Either way
        the layout is unshifted (DC at index 0).
    soft_edge
        Width in Fourier pixels of a raised-cosine taper outside the kept sector (0: binary
        mask, the default; only the binary mask is idempotent).
    device, dtype
        Placement of the returned mask.

    Returns
    -------
    torch.Tensor
        ``(z, y, x // 2 + 1)`` if ``rfft`` else ``(z, y, x)``.  The result is an expanded
        view along ``y`` (the mask does not depend on ``ky``); call ``.contiguous()`` before
        writing into it.
    """
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ValueError(f"shape must be (z, y, x) with positive sizes, got {tuple(shape)}")
    _check_range(float(tilt_min), float(tilt_max))
    if soft_edge < 0:
        raise ValueError(f"soft_edge must be >= 0, got {soft_edge}")
    nz, ny, nx = (int(s) for s in shape)
    kz = torch.fft.fftfreq(nz, dtype=torch.float64)
    kx = (
        torch.fft.rfftfreq(nx, dtype=torch.float64)
        if rfft
        else torch.fft.fftfreq(nx, dtype=torch.float64)
    )
    kz_g, kx_g = torch.meshgrid(kz, kx, indexing="ij")
    m = _kept(kz_g, kx_g, tilt_min, tilt_max, soft_edge, nz, nx)
    # A Nyquist entry stands for both +0.5 and -0.5: keep it only where both are kept, which
    # makes the mask exactly Hermitian-symmetric (real output, self-adjoint operator).
    kz_alt = torch.where(kz_g.abs() == 0.5, -kz_g, kz_g)
    kx_alt = torch.where(kx_g.abs() == 0.5, -kx_g, kx_g)
    if bool(((kz_alt != kz_g) | (kx_alt != kx_g)).any()):
        m = torch.minimum(m, _kept(kz_alt, kx_alt, tilt_min, tilt_max, soft_edge, nz, nx))
    m = m.to(device=device, dtype=dtype)
    return m[:, None, :].expand(nz, ny, m.shape[-1])


def _guard_distance(
    kz: torch.Tensor, kx: torch.Tensor, tilt_min: float, tilt_max: float, nz: int, nx: int
) -> torch.Tensor:
    """Distance in Fourier pixels (in the kz-kx plane) of each frequency from the missing
    wedge of ``[tilt_min, tilt_max]``; 0 inside it, ``inf`` where nothing is missing."""
    if tilt_min <= -90.0 and tilt_max >= 90.0:
        return torch.full_like(kz, math.inf)
    t = _angles_deg(kz, kx)
    dang = torch.minimum(t - tilt_min, tilt_max - t).clamp(min=0.0)
    r = torch.sqrt((kz * nz) ** 2 + (kx * nx) ** 2)
    return r * torch.sin(torch.deg2rad(dang.clamp(max=90.0)))


def guarded_wedge_mask(
    shape: tuple[int, int, int] | torch.Size,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
    guard: float = 3.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The half-spectrum mask ``M`` less a guard band along the missing wedge: 1 where a
    frequency was measured *and* lies at least ``guard`` Fourier pixels from the missing
    wedge, else 0.

    Windowing a crop (multiplying it by a taper) smears its spectrum by a few Fourier
    pixels, so the missing wedge's content leaks just across its border; a mask eroded by
    that much sees the same values whether the crop was cut from wedged data or from the
    whole truth.  The band reaches the origin (the wedge's apex), so the lowest
    frequencies, the DC term and the ``ky`` axis are dropped too.  ``guard=0`` gives
    :func:`missing_wedge_mask`.

    Returns
    -------
    torch.Tensor
        ``(z, y, x // 2 + 1)``, an expanded view along ``y`` as :func:`missing_wedge_mask`.
    """
    if guard < 0:
        raise ValueError(f"guard must be >= 0, got {guard}")
    base = missing_wedge_mask(shape, tilt_min, tilt_max, device=device, dtype=dtype)
    if guard == 0:
        return base
    nz, ny, nx = (int(s) for s in shape)
    kz = torch.fft.fftfreq(nz, dtype=torch.float64)
    kx = torch.fft.rfftfreq(nx, dtype=torch.float64)
    kz_g, kx_g = torch.meshgrid(kz, kx, indexing="ij")
    far = _guard_distance(kz_g, kx_g, tilt_min, tilt_max, nz, nx) >= guard
    # both signs of a Nyquist frequency must be far, as in missing_wedge_mask
    kz_alt = torch.where(kz_g.abs() == 0.5, -kz_g, kz_g)
    kx_alt = torch.where(kx_g.abs() == 0.5, -kx_g, kx_g)
    far &= _guard_distance(kz_alt, kx_alt, tilt_min, tilt_max, nz, nx) >= guard
    m = base[:, 0, :] * far.to(device=base.device, dtype=dtype)
    return m[:, None, :].expand(nz, ny, m.shape[-1])


def wedge_operator(volume: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Apply ``T_M``: ``real(ifftn(M * fftn(volume)))`` over the last three dimensions.

    Parameters
    ----------
    volume
        ``(..., z, y, x)`` real tensor; any leading batch/channel dimensions.
    mask
        Half-spectrum mask from ``missing_wedge_mask(volume.shape[-3:], rfft=True)``, shape
        ``(z, y, x // 2 + 1)`` (or broadcastable to it).

    Returns
    -------
    torch.Tensor
        Same shape, device and dtype as ``volume``; differentiable.
    """
    if volume.ndim < 3:
        raise ValueError(
            f"volume must have at least 3 dimensions (..., z, y, x), got {tuple(volume.shape)}"
        )
    nz, ny, nx = volume.shape[-3:]
    expected = (nz, ny, nx // 2 + 1)
    if mask.shape[-3:] != expected and tuple(mask.shape[-3:]) != (nz, 1, nx // 2 + 1):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match the half spectrum {expected} "
            f"of a volume of shape {tuple(volume.shape)}"
        )
    dims = (-3, -2, -1)
    compute_dtype = (
        volume.dtype if volume.dtype in (torch.float32, torch.float64) else torch.float32
    )
    spec = torch.fft.rfftn(volume.to(compute_dtype), dim=dims)
    out = torch.fft.irfftn(
        spec * mask.to(device=spec.device, dtype=compute_dtype), s=(nz, ny, nx), dim=dims
    )
    return out.to(volume.dtype)


def apply_missing_wedge(
    volume: torch.Tensor, tilt_min: float = -60.0, tilt_max: float = 60.0, *, soft_edge: float = 0.0
) -> torch.Tensor:
    """Corrupt ``volume`` ``(..., z, y, x)`` with the missing wedge of ``[tilt_min, tilt_max]``."""
    mask = missing_wedge_mask(
        volume.shape[-3:], tilt_min, tilt_max, rfft=True, soft_edge=soft_edge, device=volume.device
    )
    return wedge_operator(volume, mask)


def kept_fraction(shape: tuple[int, int, int], tilt_min: float, tilt_max: float) -> float:
    """Fraction of the full Fourier grid kept by the binary mask."""
    m = missing_wedge_mask(shape, tilt_min, tilt_max, rfft=False, dtype=torch.float64)
    return float(m.mean())


@functools.lru_cache(maxsize=32)
def wedge_symmetries(tilt_min: float = -60.0, tilt_max: float = 60.0) -> tuple[int, ...]:
    """Indices into :data:`cryogen.rotations.CUBE_ROTATIONS` of the rotations that map the
    missing wedge of ``[tilt_min, tilt_max]`` onto itself (the identity first).

    A volume with this wedge, turned by one of them, has the same wedge, so a model trained
    on the wedge can be applied to it: averaging ``R^-1 g(R y)`` over them is a test-time
    augmentation that needs no retraining.  Found by turning the full-spectrum mask of an
    odd 17^3 grid, centred so that an index flip is ``k -> -k``: the identity and the
    180-degree turns about ``x``, ``y`` and ``z`` for a symmetric range; the identity and
    the turn about ``y`` (the tilt axis) for an asymmetric one.  Cached per tilt range
    (each prediction and, with ``refill_tta``, each refill asks).
    """
    from cryogen.rotations import CUBE_ROTATIONS

    _check_range(tilt_min, tilt_max)
    n = 17
    mask = torch.fft.fftshift(missing_wedge_mask((n, n, n), tilt_min, tilt_max, rfft=False))
    return tuple(i for i, r in enumerate(CUBE_ROTATIONS) if torch.equal(r.apply(mask), mask))


def cosine_taper(
    shape: Sequence[int],
    width: int | Sequence[int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Separable window of ``shape``: 1 inside, a half cosine rising over ``width`` voxels
    at each face (one width, or one per axis; 0: no taper along that axis), nearly 0 at
    the faces, so that a cut-out volume has no jump at its periodic border."""
    dims = [int(n) for n in shape]
    widths = [int(width)] * len(dims) if isinstance(width, int) else [int(k) for k in width]
    if len(widths) != len(dims):
        raise ValueError(f"{len(widths)} taper widths for a {len(dims)}-d shape")
    lines = []
    for n, k in zip(dims, widths, strict=True):
        if not 0 <= 2 * k <= n:
            raise ValueError(f"a taper of {k} voxels at each face does not fit {n} voxels")
        line = torch.ones(n, device=device, dtype=dtype)
        if k > 0:
            ramp = 0.5 - 0.5 * torch.cos(
                torch.pi * (torch.arange(k, device=device, dtype=dtype) + 0.5) / k
            )
            line[:k], line[n - k :] = ramp, ramp.flip(0)
        lines.append(line)
    out = lines[0].reshape(-1, *([1] * (len(dims) - 1)))
    for ax, line in enumerate(lines[1:], start=1):
        view = [1] * len(dims)
        view[ax] = dims[ax]
        out = out * line.reshape(view)
    return out
