"""One base class for every refusal of the user's input, and its one-sentence form.

`InputError` subclasses `ValueError`, so code that catches `ValueError` keeps working; the
command line catches it (with `OSError` for missing, existing or unwritable files) once, in
`cli.main`, and widgets show `sentence(exc)` in their status line.
"""

from __future__ import annotations


class InputError(ValueError):
    """A file, model or option value was refused; the message is one sentence for the user."""


def sentence(exc: BaseException) -> str:
    """`exc` as one line of text (a KeyError's quotes dropped; the class name when empty).

    Example:
        >>> sentence(KeyError("No model 'x'."))
        "No model 'x'."
    """
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__
