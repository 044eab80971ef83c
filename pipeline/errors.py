"""Errors that are the user's to fix. The command line prints their message on one line, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or settings; ``str(error)`` says what is wrong and what to do."""
