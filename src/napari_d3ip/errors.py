"""One base for every error the library raises on purpose.

`except D3IPError` catches a bad input, setting, file or resource with a message that names the
problem and the fix (the CLI prints it without a traceback; the GUI shows it in the form), and
lets programming errors through. It derives from ValueError, which the first error classes
were, so existing `except ValueError` callers keep working.
"""

from __future__ import annotations


class D3IPError(ValueError):
    """A problem with what the user gave (input, setting, file, resource), said plainly."""


class OptionError(D3IPError):
    """A command-line option or library setting with a bad value (the message names it)."""
