"""Exceptions raised by the feedback store."""

from __future__ import annotations


class FeedbackStoreError(Exception):
    """The store's SQLite file cannot be opened, read or written.

    The message names the file and the fix. The original
    :class:`sqlite3.Error`, when there is one, is the ``__cause__``.
    """


class InvalidLabelError(ValueError):
    """A label is missing, not JSON-serializable, or of the wrong type.

    The message names the prediction id and the expected and received
    types, never the label's value.
    """


class InvalidRecordError(ValueError):
    """A prediction record has an invalid field; no row of the batch is
    written."""


class ReviewNotFoundError(LookupError):
    """No review item has the requested id."""
