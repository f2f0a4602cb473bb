"""The contrast transfer function and IsoNet's CTF deconvolution (a Wiener-like filter).

CTF
    ``CTF(k) = A cos(chi) + sqrt(1 - A^2) sin(chi)`` with
    ``chi(k) = pi lambda df k^2 - (pi / 2) Cs lambda^3 k^4 + phase_shift``, ``k`` the spatial
    frequency in 1/Å, ``df`` the defocus in Å (underfocus positive), ``lambda`` the
    relativistic electron wavelength and ``A`` the amplitude contrast.  This is the sign used
    by IsoNet (and Tegunov's ``tom_deconv``): ``CTF(0) = A > 0``, so filtering with it does
    not invert the contrast of a density.

Deconvolution filter (IsoNet's ``deconv``, after Tegunov's ``tom_deconv``)
    With ``f`` the frequency as a fraction of Nyquist (0 at DC, 1 at Nyquist, clamped to 1
    in the corners of Fourier space) and ``p`` the pixel size in Å::

        highpass(f) = 1 - cos(pi * min(1, f / highpassnyquist))
        snr(f)      = exp(-f * snrfalloff * 100 / p) * 10**deconvstrength * highpass(f) + 1e-6
        W(f)        = CTF(f) / (CTF(f)^2 + 1 / snr(f))

    ``deconvstrength`` is a log10 scale of the assumed SNR (so 0 is an SNR scale of 1, not
    "off"), ``snrfalloff`` how fast the SNR falls with frequency, ``highpassnyquist`` the
    extent of the very-low-frequency high-pass.  The filtered volume is brought back to the
    input's mean and standard deviation.

Frequencies are isotropic in physical units (a non-cubic chunk keeps a round filter).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "CTFParams",
    "electron_wavelength",
    "ctf",
    "ctf_2d",
    "radial_frequency",
    "wiener_filter",
    "wiener_filter_3d",
    "deconvolve",
    "deconvolve_chunked",
]

logger = logging.getLogger(__name__)


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    if not voltage_kv > 0:
        raise ValueError(f"voltage must be positive (kV), got {voltage_kv}")
    v = voltage_kv * 1e3
    return 12.2643247 / math.sqrt(v * (1.0 + v * 0.978466e-6))


@dataclass(frozen=True)
class CTFParams:
    """Microscope parameters of a CTF.

    Attributes
    ----------
    defocus
        Å, underfocus positive (RELION's ``rlnDefocus``; 3 µm = 30000 Å).
    voltage
        kV.
    cs
        Spherical aberration, mm.
    amplitude_contrast
        Fraction in ``[0, 1]``.
    phase_shift
        Additional phase shift in degrees (Volta phase plate), 0 without.
    """

    defocus: float
    voltage: float = 300.0
    cs: float = 2.7
    amplitude_contrast: float = 0.07
    phase_shift: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.defocus):
            raise ValueError(f"defocus must be finite (Å), got {self.defocus}")
        if not self.voltage > 0:
            raise ValueError(f"voltage must be positive (kV), got {self.voltage}")
        if not (math.isfinite(self.cs) and self.cs >= 0):
            raise ValueError(f"cs must be >= 0 (mm), got {self.cs}")
        if not 0.0 <= self.amplitude_contrast <= 1.0:
            raise ValueError(f"amplitude contrast must be in [0, 1], got {self.amplitude_contrast}")


def ctf(freq: torch.Tensor, params: CTFParams) -> torch.Tensor:
    """The CTF at spatial frequencies ``freq`` (1/Å, any shape), IsoNet's sign (``CTF(0) = A``).

    Returns
    -------
    torch.Tensor
        Same shape, device and dtype as ``freq`` (float64 computation).
    """
    lam = electron_wavelength(params.voltage)
    cs_a = params.cs * 1e7  # mm -> Å
    k2 = freq.to(torch.float64) ** 2
    chi = (
        math.pi * lam * params.defocus * k2
        - 0.5 * math.pi * cs_a * lam**3 * k2**2
        + math.radians(params.phase_shift)
    )
    a = params.amplitude_contrast
    out = a * torch.cos(chi) + math.sqrt(1.0 - a * a) * torch.sin(chi)
    return out.to(freq.dtype if freq.is_floating_point() else torch.float64)


def radial_frequency(
    shape: Sequence[int], pixel_size: float, *, rfft: bool, device: Any
) -> torch.Tensor:
    """``|k|`` in 1/Å on the (unshifted) FFT grid of ``shape``; half spectrum if ``rfft``."""
    axes = []
    for i, n in enumerate(shape):
        last = i == len(shape) - 1
        f = (
            torch.fft.rfftfreq(n, d=pixel_size)
            if (rfft and last)
            else torch.fft.fftfreq(n, pixel_size)
        )
        axes.append(f.to(dtype=torch.float64))
    grids = torch.meshgrid(*axes, indexing="ij")
    k2 = torch.zeros(grids[0].shape, dtype=torch.float64)
    for g in grids:
        k2 += g * g
    return torch.sqrt(k2)  # CPU float64 (MPS has no float64)


def ctf_2d(
    shape: tuple[int, int],
    pixel_size: float,
    params: CTFParams,
    *,
    rfft: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The CTF of an image of ``shape`` ``(h, w)``: ``(h, w // 2 + 1)`` (``rfft``) or ``(h, w)``,
    unshifted; float64 on the CPU when ``device`` is ``None``, else float32 on ``device``.
    No astigmatism, no defocus gradient across a tilted image."""
    if not pixel_size > 0:
        raise ValueError(f"pixel_size must be positive (Å), got {pixel_size}")
    k = radial_frequency(shape, pixel_size, rfft=rfft, device=device)
    c = ctf(k, params)
    return c if device is None else c.to(device=device, dtype=torch.float32)


def _wiener_of_fraction(
    f: torch.Tensor,
    pixel_size: float,
    params: CTFParams,
    snrfalloff: float,
    deconvstrength: float,
    highpassnyquist: float,
    phaseflipped: bool,
) -> torch.Tensor:
    if not highpassnyquist > 0:
        raise ValueError(f"highpassnyquist must be positive, got {highpassnyquist}")
    if not snrfalloff >= 0:
        raise ValueError(f"snrfalloff must be >= 0, got {snrfalloff}")
    f = f.to(torch.float64).clamp(max=1.0)
    highpass = 1.0 - torch.cos(math.pi * torch.clamp(f / highpassnyquist, max=1.0))
    snr = torch.exp(-f * snrfalloff * 100.0 / pixel_size) * 10.0**deconvstrength * highpass + 1e-6
    c = ctf(f * (0.5 / pixel_size), params)
    if phaseflipped:
        c = c.abs()
    return c / (c * c + 1.0 / snr)


def wiener_filter(
    pixel_size: float,
    params: CTFParams,
    *,
    snrfalloff: float = 1.0,
    deconvstrength: float = 1.0,
    highpassnyquist: float = 0.02,
    phaseflipped: bool = False,
    n_points: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IsoNet's 1D deconvolution filter on ``n_points`` frequencies from 0 to Nyquist.

    Returns
    -------
    (f, ctf, wiener)
        ``(n_points,)`` float64 each: frequency as a fraction of Nyquist, the CTF (absolute
        value if ``phaseflipped``) and the filter ``W``.
    """
    f = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)
    c = ctf(f * (0.5 / pixel_size), params)
    if phaseflipped:
        c = c.abs()
    w = _wiener_of_fraction(
        f, pixel_size, params, snrfalloff, deconvstrength, highpassnyquist, phaseflipped
    )
    return f, c, w


def wiener_filter_3d(
    shape: Sequence[int],
    pixel_size: float,
    params: CTFParams,
    *,
    snrfalloff: float = 1.0,
    deconvstrength: float = 1.0,
    highpassnyquist: float = 0.02,
    phaseflipped: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The deconvolution filter on the ``rfftn`` grid of a ``(z, y, x)`` volume.

    Returns
    -------
    torch.Tensor
        ``(z, y, x // 2 + 1)``, unshifted.
    """
    if len(shape) != 3:
        raise ValueError(f"shape must be (z, y, x), got {tuple(shape)}")
    if not pixel_size > 0:
        raise ValueError(f"pixel_size must be positive (Å), got {pixel_size}")
    k = radial_frequency(shape, pixel_size, rfft=True, device=device)
    f = k / (0.5 / pixel_size)
    w = _wiener_of_fraction(
        f, pixel_size, params, snrfalloff, deconvstrength, highpassnyquist, phaseflipped
    )
    return w.to(device=device, dtype=dtype)


def _filter(volume: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    shape = volume.shape[-3:]
    spec = torch.fft.rfftn(volume, dim=(-3, -2, -1))
    return torch.fft.irfftn(spec * filt, s=shape, dim=(-3, -2, -1))


def deconvolve(
    volume: torch.Tensor,
    pixel_size: float,
    params: CTFParams,
    *,
    snrfalloff: float = 1.0,
    deconvstrength: float = 1.0,
    highpassnyquist: float = 0.02,
    phaseflipped: bool = False,
    normalise: bool = True,
) -> torch.Tensor:
    """Apply IsoNet's CTF deconvolution filter to a whole volume.

    Parameters
    ----------
    volume
        ``(..., z, y, x)`` real tensor.
    pixel_size
        Å per voxel.
    params
        Microscope parameters (defocus of the zero tilt).
    snrfalloff, deconvstrength, highpassnyquist, phaseflipped
        See the module docstring (IsoNet's defaults 1.0, 1.0, 0.02, False).
    normalise
        Bring the result to the input's mean and standard deviation (as IsoNet does).

    Returns
    -------
    torch.Tensor
        Same shape, device and dtype.
    """
    if volume.ndim < 3:
        raise ValueError(f"volume must be (..., z, y, x), got shape {tuple(volume.shape)}")
    x = volume.to(torch.float32) if not volume.is_floating_point() else volume
    filt = wiener_filter_3d(
        x.shape[-3:],
        pixel_size,
        params,
        snrfalloff=snrfalloff,
        deconvstrength=deconvstrength,
        highpassnyquist=highpassnyquist,
        phaseflipped=phaseflipped,
        device=x.device,
        dtype=x.dtype,
    )
    out = _filter(x, filt)
    if normalise:
        dims = (-3, -2, -1)
        mean_in, std_in = x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True)
        mean_out, std_out = out.mean(dim=dims, keepdim=True), out.std(dim=dims, keepdim=True)
        out = (out - mean_out) / std_out.clamp(min=1e-30) * std_in + mean_in
    return out.to(volume.dtype if volume.is_floating_point() else out.dtype)


def _starts(n: int, core: int) -> list[int]:
    return list(range(0, n, core)) if n > core else [0]


def _chunk_boxes(
    shape: Sequence[int], chunk_size: int, overlap: float
) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]]]:
    """(read box, write box in the volume, write box inside the read box) of every chunk.

    The volume is cut into cores of edge ``chunk_size - 2 * margin``; each is read with a
    margin of ``round(overlap * chunk_size / 2)`` voxels on every side (clipped to the volume).
    """
    margin = int(round(overlap * chunk_size / 2))
    core = max(1, chunk_size - 2 * margin)
    per_axis = []
    for n in shape:
        boxes = []
        for s in _starts(int(n), core):
            e = min(int(n), s + core)
            r0, r1 = max(0, s - margin), min(int(n), e + margin)
            boxes.append((slice(r0, r1), slice(s, e), slice(s - r0, e - r0)))
        per_axis.append(boxes)
    for bz in per_axis[0]:
        for by in per_axis[1]:
            for bx in per_axis[2]:
                yield (bz[0], by[0], bx[0]), (bz[1], by[1], bx[1]), (bz[2], by[2], bx[2])


def deconvolve_chunked(
    volume: Any,
    out: Any,
    pixel_size: float,
    params: CTFParams,
    *,
    snrfalloff: float = 1.0,
    deconvstrength: float = 1.0,
    highpassnyquist: float = 0.02,
    phaseflipped: bool = False,
    chunk_size: int = 200,
    overlap: float = 0.25,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Deconvolve a large ``(z, y, x)`` array chunk by chunk into ``out``.

    Overlapping cubic chunks of edge ``chunk_size`` are filtered one at a time; each keeps
    only its core (a margin of ``overlap * chunk_size / 2`` voxels on every side is
    discarded, except at the volume's faces, which are reflected before filtering).  The
    mean of a chunk is multiplied by the filter's gain at the lowest frequency of the whole
    volume (a chunk cannot resolve lower frequencies), so chunks do not lose their local
    mean to the high-pass.  A second pass brings ``out`` to the input's mean and standard
    deviation.  Working memory is a few chunks, whatever the volume's size.

    Parameters
    ----------
    volume
        ``(z, y, x)`` numpy array or memory map (read by chunks).
    out
        Writable ``(z, y, x)`` float array of the same shape (e.g. from
        :func:`cryogen.io.create_volume_memmap`).
    chunk_size
        Edge of a chunk in voxels (>= 16).
    overlap
        Fraction of a chunk shared with its neighbours, in ``[0, 0.9]``.
    progress
        Called with ``(chunks done, chunks in all)``.

    Returns
    -------
    The array ``out``.
    """
    shape = _check_chunking(volume, out, chunk_size, overlap)
    margin = int(round(overlap * chunk_size / 2))
    boxes = list(_chunk_boxes(shape, chunk_size, overlap))
    lowest = torch.tensor([2.0 / max(shape)], dtype=torch.float64)  # fraction of Nyquist
    dc_gain = float(
        _wiener_of_fraction(
            lowest, pixel_size, params, snrfalloff, deconvstrength, highpassnyquist, phaseflipped
        )[0]
    )
    filters: dict[tuple[int, ...], torch.Tensor] = {}

    def filter_of(shape: tuple[int, ...]) -> torch.Tensor:
        if shape not in filters:
            filters[shape] = wiener_filter_3d(
                shape,
                pixel_size,
                params,
                snrfalloff=snrfalloff,
                deconvstrength=deconvstrength,
                highpassnyquist=highpassnyquist,
                phaseflipped=phaseflipped,
                device=device,
            )
        return filters[shape]

    moments_in, moments_out = _Moments(), _Moments()
    for done, (read, write, inner) in enumerate(boxes, start=1):
        block = torch.from_numpy(np.array(volume[read], dtype=np.float32)).to(device)
        core = _deconvolve_chunk(block, read, write, inner, margin, filter_of, dc_gain)
        moments_in.add(block[inner])
        moments_out.add(core)
        out[write] = core.cpu().numpy()
        if progress is not None:
            progress(done, len(boxes))
    _match_moments(out, moments_out, moments_in)
    return out


def _check_chunking(volume: Any, out: Any, chunk_size: int, overlap: float) -> tuple[int, ...]:
    """The volume's shape, or ``ValueError`` for arguments :func:`deconvolve_chunked` refuses."""
    shape = tuple(int(s) for s in volume.shape)
    if len(shape) != 3:
        raise ValueError(f"volume must be (z, y, x), got shape {shape}")
    if tuple(int(s) for s in out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, the volume {shape}")
    if chunk_size < 16:
        raise ValueError(f"chunk_size must be >= 16 voxels, got {chunk_size}")
    if not 0.0 <= overlap <= 0.9:
        raise ValueError(f"overlap must be in [0, 0.9], got {overlap}")
    return shape


def _deconvolve_chunk(
    block: torch.Tensor,
    read: tuple[slice, ...],
    write: tuple[slice, ...],
    inner: tuple[slice, ...],
    margin: int,
    filter_of: Callable[[tuple[int, ...]], torch.Tensor],
    dc_gain: float,
) -> torch.Tensor:
    """Filter one chunk read at ``read`` and return its core (``inner``, written at ``write``)."""
    # reflect at the volume's faces so that every chunk has its margin
    pads = []
    for ax in (2, 1, 0):
        lo = margin - (write[ax].start - read[ax].start)
        hi = margin - (read[ax].stop - write[ax].stop)
        lo = max(0, min(lo, block.shape[ax] - 1))
        hi = max(0, min(hi, block.shape[ax] - 1))
        pads += [lo, hi]
    padded = torch.nn.functional.pad(block[None, None], pads, mode="reflect")[0, 0]
    # the chunk's mean stands for the frequencies below the chunk's own: give it the
    # gain of the whole volume's lowest frequency, not the chunk's (near-zero) DC gain
    mean_p = padded.mean()
    res = _filter(padded - mean_p, filter_of(tuple(padded.shape))) + mean_p * dc_gain
    lo_z, lo_y, lo_x = pads[4], pads[2], pads[0]
    return res[
        lo_z + inner[0].start : lo_z + inner[0].stop,
        lo_y + inner[1].start : lo_y + inner[1].stop,
        lo_x + inner[2].start : lo_x + inner[2].stop,
    ]


class _Moments:
    """Running count, sum and sum of squares of tensors (float64), for mean and std."""

    def __init__(self) -> None:
        self.n, self.s1, self.s2 = 0, 0.0, 0.0

    def add(self, t: torch.Tensor) -> None:
        t64 = t.double()
        self.n += t64.numel()
        self.s1 += float(t64.sum())
        self.s2 += float((t64 * t64).sum())

    def mean_std(self) -> tuple[float, float]:
        mean = self.s1 / self.n
        return mean, math.sqrt(max(self.s2 / self.n - mean**2, 0.0))


def _match_moments(out: Any, have: _Moments, want: _Moments) -> None:
    """Bring ``out`` (moments ``have``) to the mean and std of ``want``, in slabs."""
    mean_in, std_in = want.mean_std()
    mean_out, std_out = have.mean_std()
    scale = std_in / std_out if std_out > 0 else 1.0
    shape = tuple(int(s) for s in out.shape)
    step = max(1, (1 << 22) // max(1, shape[1] * shape[2]))
    for z0 in range(0, shape[0], step):
        sl = slice(z0, min(shape[0], z0 + step))
        out[sl] = ((np.asarray(out[sl], dtype=np.float64) - mean_out) * scale + mean_in).astype(
            out.dtype
        )
