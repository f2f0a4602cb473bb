"""Where the relative paths of a STAR file start from.

RELION reads every relative path of a STAR file from its *project directory*, the folder it
runs in, wherever the STAR file lies (``Tomograms/job003/tomograms.star`` lists
``Tomograms/job003/tomograms/rec_TS_01.mrc``); IsoNet2 does the same.  This tool runs in the
project directory as RELION does, so:

- a STAR file inside the current directory records paths relative to the current directory
  (:func:`relative_path`), and its relative paths are looked up there first;
- a STAR file elsewhere records paths relative to its own folder (it can then be moved with
  the files), and its paths are looked up there first;
- a path not found that way is looked up in the other of the two folders, then in each
  folder above the STAR file (a RELION project read from another directory)
  (:func:`star_path_candidates`, :func:`resolve_star_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "project_dir",
    "relative_path",
    "resolve_star_path",
    "star_base",
    "star_path_candidates",
]


def project_dir() -> Path:
    """The project directory: the current working directory, as for RELION."""
    return Path.cwd()


def _inside(folder: Path, root: Path) -> bool:
    try:
        folder.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def star_base(folder: str | os.PathLike[str]) -> Path:
    """The folder that the relative paths of a STAR file in ``folder`` start from: the
    project directory when ``folder`` lies inside it, else ``folder`` itself."""
    here, project = Path(folder), project_dir()
    return project if _inside(here, project) else here


def star_path_candidates(
    value: str | os.PathLike[str], folder: str | os.PathLike[str]
) -> list[Path]:
    """Where a path written in a STAR file of ``folder`` may be, in the order it is looked
    for: as is when absolute; else from :func:`star_base`, from the other of the STAR file's
    folder and the project directory, then from each folder above the STAR file's."""
    p = Path(str(value).strip()).expanduser()
    if p.is_absolute():
        return [p]
    here = Path(folder)
    bases = [star_base(here), here, project_dir(), *here.resolve().parents]
    out: list[Path] = []
    seen: set[Path] = set()
    for base in bases:
        key = base.resolve()
        if key not in seen:
            seen.add(key)
            out.append(base / p)
    return out


def resolve_star_path(value: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """The file a path of a STAR file in ``folder`` names: the first of
    :func:`star_path_candidates` that exists, else the first (an output not written yet)."""
    candidates = star_path_candidates(value, folder)
    return next((c for c in candidates if c.exists()), candidates[0])


def relative_path(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> str:
    """``path`` as a STAR file in ``folder`` records it: relative to :func:`star_base` of
    ``folder`` (the project directory, as RELION reads it, or the STAR file's folder), or
    absolute where no relative path exists (another drive)."""
    try:
        return os.path.relpath(Path(path).resolve(), star_base(folder).resolve())
    except ValueError:  # another drive (Windows)
        return str(Path(path).resolve())
