"""Redaction of input values from exception messages.

Library errors quote the values that broke them, for example scikit-learn's
``could not convert string to float: 'jane@example.com'`` or the
``array=[5.1 3.5]`` it prints for 1-D input. Messages keep their shape and
lose the quoted literals and bracketed lists of values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

REDACTED = "<redacted>"

_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)
# A list, or a tuple holding a digit, that is not a method's arguments
# (scikit-learn's advice "array.reshape(-1, 1)" stays readable).
_BRACKETED = re.compile(r"\[[^\[\]]*\]|(?<![\w.])\([^()]*\d[^()]*\)", re.DOTALL)
_UNCLOSED = re.compile(r"[\[(][^\[\]()]*$", re.DOTALL)
_ARRAY_REPR = re.compile(r"array\(\[.*?\]\)|array\(\[.*", re.DOTALL)
_MAX_SCANNED_CHARS = 200_000
_MAX_MESSAGE_CHARS = 1000
_MAX_INPUT_CELLS = 100_000


def input_strings(data: Any) -> list[str]:
    """Return the distinct strings of an input's text cells, longest first.

    Reads pandas objects (object, string and categorical columns) and numpy
    arrays of objects or unicode. Some errors quote a value bare, such as
    pandas' ``unable to parse: <value>``, which no pattern can tell from
    the message's own words, so those values are removed by name.
    """
    # NOTE: only the first 100,000 cells are read, and numbers quoted bare
    # in a message are not found this way.
    module = type(data).__module__
    if module.startswith("pandas") and hasattr(data, "select_dtypes"):
        textual = data.select_dtypes(include=["object", "string", "category"])
        cells = textual.to_numpy(dtype=object).ravel()
    elif module.startswith("pandas") and hasattr(data, "to_frame"):
        return input_strings(data.to_frame())
    elif isinstance(data, np.ndarray) and data.dtype.kind in "OU":
        cells = data.ravel()
    else:
        return []
    found = {cell for cell in cells[:_MAX_INPUT_CELLS].tolist() if isinstance(cell, str)}
    found.discard("")
    return sorted(found, key=len, reverse=True)


def redact_message(message: str, literals: Iterable[str] = ()) -> str:
    """Return ``message`` with quoted literals and value lists replaced.

    Each string of ``literals`` (the input's own values) is replaced too
    where it stands as a whole word. The whole message is redacted before
    it is cut to 1,000 characters, so a list cut in half cannot escape.
    """
    text = message[:_MAX_SCANNED_CHARS]
    for literal in literals:
        if literal in text:
            whole = rf"(?<!\w){re.escape(literal)}(?!\w)"
            text = re.sub(whole, REDACTED, text)
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
