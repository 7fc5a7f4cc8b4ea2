"""Errors that are the user's to fix: shown as one line, not a traceback.

A leaf: it imports nothing of beamstream's, so the CLI can catch user errors
(``beamstream ingest --help`` and the like) without importing Beam. Each
module's own error class subclasses ``UserError`` as well as the builtin it
always was (``ValueError``, ``RuntimeError``), so ``except ValueError`` code
keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in input, options or environment, explained by its message alone."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)
