"""Redaction of input values from exception messages.

Library errors quote the values that broke them, for example scikit-learn's
``could not convert string to float: 'jane@example.com'`` or the
``array=[5.1 3.5]`` it prints for 1-D input. Messages keep their shape and
lose the quoted literals and bracketed arrays.
"""

from __future__ import annotations

import re

_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)
_BRACKETED = re.compile(r"\[[^\[\]]*\]|\([^()]*\d[^()]*\)", re.DOTALL)
_ARRAY_REPR = re.compile(r"array\(.*\)", re.DOTALL)
_MAX_MESSAGE_CHARS = 1000

REDACTED = "<redacted>"


def redact_message(message: str) -> str:
    """Return ``message`` with quoted literals and value lists replaced."""
    text = _QUOTED.sub(f"'{REDACTED}'", message[: _MAX_MESSAGE_CHARS * 4])
    text = _ARRAY_REPR.sub(f"array({REDACTED})", text)
    previous = None
    while previous != text:
        previous = text
        text = _BRACKETED.sub(f"[{REDACTED}]", text)
    return text[:_MAX_MESSAGE_CHARS]
