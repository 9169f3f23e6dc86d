"""Errors as users read them: one line, naming the file once."""
from __future__ import annotations

from facecodec.bitstream import FczError


def reason(exc: BaseException) -> str:
    """The one-line reason an error gives: an OSError's own words and file, facecodec's message, or for an error
    facecodec does not expect (a library's TypeError on a strange file, say) its type's name and message."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    elif isinstance(exc, (FczError, OSError)):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def about(source: str, exc: BaseException) -> str:
    """``source: reason``, without naming the source twice when the reason starts with it already."""
    text = reason(exc)
    return text if text.startswith(f"{source}: ") else f"{source}: {text}"
