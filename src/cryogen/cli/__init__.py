"""The ``cryogen`` command line: thin commands that read files, call the library, write files.

``app`` is the Typer application, ``main`` the entry point of the ``cryogen`` script.
"""

from cryogen.cli.app import app, main, user_errors

__all__ = ["app", "main", "user_errors"]
