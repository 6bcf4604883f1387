"""Files that PredictionStore cannot use raise FeedbackStoreError at open.

Permission tests and root: root's CAP_DAC_OVERRIDE capability lets it
write any file and create files in any directory whatever their mode bits,
so ``chmod 0444`` alone makes nothing read-only for root, and the tests run
as root on the build machines. When running as root, the open therefore
runs in a thread whose effective capabilities lack CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH (capabilities are per thread on Linux). The kernel
then checks the mode bits of root-owned files as for any owner, so the
thread meets the same EACCES errors as an unprivileged service user.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from feedback_test_support import record

from otel_mlmon.feedback import FeedbackStoreError, PredictionStore

T = TypeVar("T")

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


class _CapabilityHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapabilityData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _run_without_dac_override(function: Callable[[], T]) -> T:
    """Run ``function`` in a thread without root's permission overrides.

    Only the effective set of the new thread changes; the thread ends with
    the call, and the test process keeps its capabilities.
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("dropping one capability per thread needs Linux")
    libc = ctypes.CDLL(None, use_errno=True)
    outcome: dict[str, object] = {}

    def target() -> None:
        header = _CapabilityHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapabilityData * 2)()
        if libc.capget(ctypes.byref(header), data) != 0:
            outcome["skip"] = f"capget failed: {os.strerror(ctypes.get_errno())}"
            return
        data[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
        if libc.capset(ctypes.byref(header), data) != 0:
            outcome["skip"] = f"capset failed: {os.strerror(ctypes.get_errno())}"
            return
        try:
            outcome["value"] = function()
        except Exception as error:  # noqa: BLE001 - re-raised by the caller
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "skip" in outcome:
        pytest.skip(str(outcome["skip"]))
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _open_unprivileged(path: Path) -> None:
    """Open and close a store on ``path`` as a user without overrides."""

    def open_store() -> None:
        PredictionStore(path).close()

    if os.geteuid() == 0:
        _run_without_dac_override(open_store)
    else:
        open_store()


def _make_store(path: Path) -> None:
    with PredictionStore(path) as store:
        store.add_predictions([record("p1")])


def test_read_only_file(store_path: Path):
    """A store file with mode 0444 raises an error naming the file and fix."""
    _make_store(store_path)
    store_path.chmod(0o444)
    with pytest.raises(FeedbackStoreError) as raised:
        _open_unprivileged(store_path)
    message = str(raised.value)
    assert str(store_path) in message
    assert "is read-only" in message
    assert "fix the permissions" in message


def test_read_only_directory(store_path: Path):
    """A writable file in a read-only directory raises the same error.

    SQLite must create the -wal and -shm files beside the database, so the
    directory must be writable too.
    """
    _make_store(store_path)
    directory = store_path.parent
    directory.chmod(0o555)
    try:
        with pytest.raises(FeedbackStoreError) as raised:
            _open_unprivileged(store_path)
    finally:
        directory.chmod(0o755)
    message = str(raised.value)
    assert str(store_path) in message
    assert "writable directory" in message


def test_new_file_in_read_only_directory(store_path: Path):
    """Creating a store in a read-only directory raises a clear error."""
    directory = store_path.parent
    directory.chmod(0o555)
    try:
        with pytest.raises(FeedbackStoreError) as raised:
            _open_unprivileged(store_path)
    finally:
        directory.chmod(0o755)
    message = str(raised.value)
    assert str(store_path) in message
    assert "writable directory" in message


def test_capability_drop_enforces_modes(tmp_path: Path):
    """The helper really makes mode bits apply, so the tests above can fail."""
    if os.geteuid() != 0:
        pytest.skip("only needed when the tests run as root")
    target = tmp_path / "read-only.txt"
    target.write_text("x", encoding="utf-8")
    target.chmod(0o444)
    with target.open("a", encoding="utf-8"):
        pass
    with pytest.raises(PermissionError):
        _run_without_dac_override(lambda: target.open("a", encoding="utf-8"))


def test_garbage_file(store_path: Path):
    """A file of random bytes raises an error saying to move it aside."""
    store_path.write_bytes(os.urandom(8192))
    with pytest.raises(FeedbackStoreError) as raised:
        PredictionStore(store_path)
    message = str(raised.value)
    assert str(store_path) in message
    assert "corrupt or not a SQLite database" in message
    assert "move the file" in message


def test_damaged_pages(store_path: Path):
    """A store whose pages were overwritten fails SQLite's check at open."""
    with PredictionStore(store_path) as store:
        store.add_predictions([record(f"p{index}") for index in range(2000)])
    with sqlite3.connect(store_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    with store_path.open("r+b") as handle:
        handle.seek(3 * page_size)
        handle.write(os.urandom(4 * page_size))
    with pytest.raises(FeedbackStoreError) as raised:
        PredictionStore(store_path)
    message = str(raised.value)
    assert str(store_path) in message
    assert "corrupt" in message


def test_database_of_other_application(store_path: Path):
    """A SQLite file with other tables is left alone."""
    with sqlite3.connect(store_path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(FeedbackStoreError, match="another application"):
        PredictionStore(store_path)
    with sqlite3.connect(store_path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("invoices",)]


def test_newer_schema_version(store_path: Path):
    """A store written by a newer schema version raises before any write."""
    _make_store(store_path)
    with sqlite3.connect(store_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(FeedbackStoreError, match="schema version 99"):
        PredictionStore(store_path)


def test_empty_file_becomes_store(store_path: Path):
    """A zero-byte file is an empty SQLite database and becomes a store."""
    store_path.touch()
    with PredictionStore(store_path) as store:
        inserted = store.add_predictions([record("p1")])
    assert inserted == 1


def test_missing_directory(tmp_path: Path):
    """A path in a missing directory raises an error asking to create it."""
    path = tmp_path / "missing" / "feedback.sqlite3"
    with pytest.raises(FeedbackStoreError, match="does not exist; create it"):
        PredictionStore(path)


def test_directory_path(tmp_path: Path):
    """A directory given as the path raises and suggests a file name."""
    with pytest.raises(FeedbackStoreError, match="is a directory"):
        PredictionStore(tmp_path)


@pytest.mark.parametrize("path", ["", ":memory:"])
def test_in_memory_path_rejected(path: str):
    """In-memory databases are rejected, because processes cannot share them."""
    with pytest.raises(ValueError, match="path of a database file"):
        PredictionStore(path)
