"""Redaction of input values from exception messages.

Library errors quote the values that broke them, for example scikit-learn's
``could not convert string to float: 'jane@example.com'`` or the
``array=[5.1 3.5]`` it prints for 1-D input. Messages keep their shape and
lose the quoted literals and bracketed lists of values.
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"

_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)
# A list, or a tuple holding a digit, that is not a method's arguments
# (scikit-learn's advice "array.reshape(-1, 1)" stays readable).
_BRACKETED = re.compile(r"\[[^\[\]]*\]|(?<![\w.])\([^()]*\d[^()]*\)", re.DOTALL)
_UNCLOSED = re.compile(r"[\[(][^\[\]()]*$", re.DOTALL)
_ARRAY_REPR = re.compile(r"array\(\[.*?\]\)|array\(\[.*", re.DOTALL)
_MAX_SCANNED_CHARS = 200_000
_MAX_MESSAGE_CHARS = 1000


def redact_message(message: str) -> str:
    """Return ``message`` with quoted literals and value lists replaced.

    The whole message is redacted before it is cut to 1,000 characters,
    so a list cut in half cannot escape.
    """
    text = message[:_MAX_SCANNED_CHARS]
    text = _QUOTED.sub(f"'{REDACTED}'", text)
    text = _ARRAY_REPR.sub(f"array({REDACTED})", text)
    previous = None
    while previous != text:
        previous = text
        text = _BRACKETED.sub(f"[{REDACTED}]", text)
    text = _UNCLOSED.sub(f"[{REDACTED}", text)
    if len(message) > _MAX_SCANNED_CHARS:
        text += "..."
    return text[:_MAX_MESSAGE_CHARS]
