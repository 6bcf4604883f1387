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
# Multi-word input values whose words all occur in one message are searched
# for one by one; past this many the message is dropped.
_MAX_LITERAL_SEARCHES = 64
_WORD = re.compile(r"\w+")


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
        # Rows are cut before the conversion, which would otherwise copy
        # every cell of a large frame.
        rows = -(-_MAX_INPUT_CELLS // max(textual.shape[1], 1))
        cells = textual.iloc[:rows].to_numpy(dtype=object).ravel()
    elif module.startswith("pandas") and hasattr(data, "to_frame"):
        return input_strings(data.to_frame())
    elif isinstance(data, np.ndarray) and data.dtype.kind in "OU":
        cells = data[:_MAX_INPUT_CELLS].ravel() if data.ndim else data.ravel()
    else:
        return []
    found = {cell for cell in cells[:_MAX_INPUT_CELLS].tolist() if isinstance(cell, str)}
    found.discard("")
    return sorted(found, key=len, reverse=True)


def redact_message(message: str, literals: Iterable[str] = ()) -> str:
    """Return ``message`` with quoted literals and value lists replaced.

    Each string of ``literals`` (the input's own values) is replaced too
    where it appears as a whole word. The whole message is redacted before
    it is cut to 1,000 characters, so a list cut in half cannot escape.
    """
    text = _redact_literals(message[:_MAX_SCANNED_CHARS], literals)
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


def _redact_literals(text: str, literals: Iterable[str]) -> str:
    """Replace each of ``literals`` where it appears as a whole word in ``text``.

    A whole-word match never splits a word of ``text``, so every word of a
    literal is a whole word of ``text``. Literals with a word missing there
    are skipped without a search, and literals that are one word are
    replaced in one pass. This keeps the cost near linear in the text and
    the literals, where a search per literal took seconds for 100,000
    distinct values and a long message.
    """
    # "redacted" is added because replacements bring that word into the text.
    words = set(_WORD.findall(text))
    words.add(REDACTED.strip("<>"))
    single: set[str] = set()
    budget = _MAX_LITERAL_SEARCHES
    # In a short text a substring search costs less than splitting the
    # literal into words, so it is tried first.
    short = len(text) <= 4096
    for literal in literals:
        if not literal:
            continue
        if _is_word(literal):
            if literal in words:
                single.add(literal)
            continue
        if short and literal not in text:
            continue
        if not all(word in words for word in _WORD.findall(literal)):
            continue
        if budget == 0:
            # NOTE: the words of too many multi-word values occur in the
            # message to search for each, so the message is dropped rather
            # than risk a leak.
            return REDACTED
        budget -= 1
        if literal not in text:
            continue
        whole = rf"(?<!\w){re.escape(literal)}(?!\w)"
        text = re.sub(whole, REDACTED, text)
    if single:
        # Runs last: a multi-word literal is longer than each of its words,
        # so the longest-first order is kept.
        text = _WORD.sub(lambda m: REDACTED if m[0] in single else m[0], text)
    return text


def _is_word(literal: str) -> bool:
    # Same test as the pattern \w+ (str.isalnum() or an underscore).
    return literal.replace("_", "a").isalnum()
