"""SQLite schema, connections and open-time checks of the feedback store."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from otel_mlmon.feedback._codec import hash_prediction_id
from otel_mlmon.feedback.errors import FeedbackStoreError

_logger = logging.getLogger(__name__)

# Marks the file as a feedback store in its header (PRAGMA application_id).
# The four bytes spell "mlfb".
APPLICATION_ID = 0x6D6C6662
SCHEMA_VERSION = 1

# Idle connections kept for reuse. Callers beyond this many at once open
# extra connections, which are closed when returned.
_MAX_IDLE_CONNECTIONS = 8

# Times are seconds since the Unix epoch. JSON columns contain JSON text.
_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS predictions (
        prediction_id TEXT PRIMARY KEY,
        model_name TEXT NOT NULL,
        model_version TEXT NOT NULL,
        created_at REAL NOT NULL,
        predicted TEXT NOT NULL,
        model_kind TEXT CHECK (model_kind IN ('classification', 'regression')),
        confidence REAL,
        trace_id TEXT,
        span_id TEXT,
        input_row TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS predictions_created_at ON predictions (created_at)",
    (
        "CREATE INDEX IF NOT EXISTS predictions_model"
        " ON predictions (model_name, model_version)"
    ),
    """
    CREATE TABLE IF NOT EXISTS labels (
        prediction_id TEXT PRIMARY KEY
            REFERENCES predictions (prediction_id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        received_at REAL NOT NULL,
        delay_s REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS labels_received_at ON labels (received_at)",
    """
    CREATE TABLE IF NOT EXISTS review_queue (
        review_id INTEGER PRIMARY KEY,
        prediction_id TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('low_confidence', 'drift')),
        status TEXT NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'resolved')),
        created_at REAL NOT NULL,
        resolved_at REAL,
        resolved_label TEXT,
        UNIQUE (prediction_id, reason)
    )
    """,
    (
        "CREATE INDEX IF NOT EXISTS review_queue_status"
        " ON review_queue (status, review_id)"
    ),
    """
    CREATE TABLE IF NOT EXISTS pruned_ids (
        seq INTEGER PRIMARY KEY,
        id_hash INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS pruned_ids_hash ON pruned_ids (id_hash)",
)
_TABLES = frozenset({"predictions", "labels", "review_queue", "pruned_ids"})


def connect(
    path: Path, busy_timeout_s: float, wal_limit_bytes: int
) -> sqlite3.Connection:
    """Open a connection in autocommit mode with the store's settings.

    Transactions are opened explicitly with ``BEGIN IMMEDIATE``, so that a
    writer takes the write lock before it reads and waits for it through
    the busy timeout instead of failing when it upgrades a read lock.
    ``synchronous=NORMAL`` in WAL mode keeps every commit atomic and
    durable across a process crash; a power loss may lose the last commits.

    The WAL is checkpointed when it reaches ``wal_limit_bytes`` and then
    truncated to that size. It grows past it while a reader in another
    connection holds back the checkpoint.
    """
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_s,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {max(1, wal_limit_bytes // page_size)}")
    conn.execute(f"PRAGMA journal_size_limit = {wal_limit_bytes}")
    conn.create_function("mlmon_id_hash", 1, hash_prediction_id, deterministic=True)
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in a ``BEGIN IMMEDIATE`` transaction.

    Commits when the block returns and rolls back when it raises.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def initialize(
    path: Path, busy_timeout_s: float, wal_limit_bytes: int, verify: bool
) -> None:
    """Create or check the store's file, and raise a clear error if unusable.

    Raises:
        FeedbackStoreError: The file is read-only, cannot be created, is
            corrupt, or is a SQLite database of another application.
    """
    if path.is_dir():
        raise FeedbackStoreError(
            f"Feedback store path {path} is a directory; pass the path of a "
            f"database file, such as {path / 'feedback.sqlite3'}"
        )
    try:
        conn = connect(path, busy_timeout_s, wal_limit_bytes)
    except sqlite3.Error as error:
        raise store_error(path, error, "open the feedback store") from error
    try:
        _retry_while_busy(lambda: _set_up(conn, path), busy_timeout_s)
        if verify:
            _quick_check(conn, path)
    except sqlite3.Error as error:
        raise store_error(path, error, "open the feedback store") from error
    finally:
        conn.close()


def _set_up(conn: sqlite3.Connection, path: Path) -> None:
    _enable_wal(conn, path)
    with write_transaction(conn):
        _create_schema(conn, path)
        # SQLite opens a read-only file without an error, and then any
        # write statement fails, even one that changes nothing.
        conn.execute("DELETE FROM pruned_ids WHERE 0")


def _retry_while_busy(operation: Callable[[], None], timeout_s: float) -> None:
    # Processes that open a new file at once all switch it to WAL mode.
    # Each holds a shared lock and needs an exclusive one, so SQLite
    # returns SQLITE_BUSY at once instead of waiting, to avoid a deadlock.
    deadline = time.monotonic() + timeout_s
    delay_s = 0.005
    while True:
        try:
            operation()
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() >= deadline:
                raise
        time.sleep(delay_s * random.uniform(0.5, 1.5))
        delay_s = min(delay_s * 2, 0.25)


def _is_busy(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise FeedbackStoreError(
            f"Cannot enable WAL mode for feedback store {path} (the journal "
            f"mode stays {mode!r}); WAL needs a local file system with "
            f"shared memory, so use a path on a local disk"
        )


def _create_schema(conn: sqlite3.Connection, path: Path) -> None:
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    foreign = sorted(tables - _TABLES)
    if application_id not in (0, APPLICATION_ID) or (application_id == 0 and foreign):
        raise FeedbackStoreError(
            f"{path} is a SQLite database of another application (tables: "
            f"{', '.join(foreign) or 'none'}); pass the path of a new file "
            f"for the feedback store"
        )
    if version > SCHEMA_VERSION:
        raise FeedbackStoreError(
            f"Feedback store {path} has schema version {version}, newer than "
            f"version {SCHEMA_VERSION} that this otel_mlmon reads; upgrade "
            f"otel_mlmon or use a new file"
        )
    for statement in _SCHEMA:
        conn.execute(statement)
    if application_id == 0:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        _logger.debug("Created feedback store schema in %s", path)


def _quick_check(conn: sqlite3.Connection, path: Path) -> None:
    # quick_check reads every page (about 1 ms per MB of file, measured on
    # a warm page cache), but it finds damage that a header read misses.
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if [tuple(row) for row in rows] != [("ok",)]:
        raise FeedbackStoreError(
            f"Feedback store {path} is corrupt (SQLite quick_check reported "
            f"{len(rows)} problems, first: {rows[0][0]}); move the file and "
            f"its -wal and -shm files aside, and a new store is created on "
            f"the next open"
        )


def store_error(path: Path, error: sqlite3.Error, action: str) -> FeedbackStoreError:
    """Translate a SQLite error into one that names the file and the fix.

    Args:
        path: The store's file.
        error: The error SQLite raised.
        action: What failed, completing "Failed to ... in PATH", such as
            "insert predictions".
    """
    text = str(error)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return FeedbackStoreError(
            f"Feedback store {path} is read-only ({text}). The process needs "
            f"write access to the file and to its directory, because SQLite "
            f"creates {path.name}-wal and {path.name}-shm beside it; fix the "
            f"permissions or pass a path in a writable directory"
        )
    if "unable to open" in lowered:
        return FeedbackStoreError(_cannot_open_message(path, text))
    if "not a database" in lowered or "malformed" in lowered:
        return FeedbackStoreError(
            f"Feedback store {path} is corrupt or not a SQLite database "
            f"({text}); move the file and its -wal and -shm files aside, "
            f"and a new store is created on the next open"
        )
    if _is_busy(error):
        return FeedbackStoreError(
            f"Failed to {action} in {path}: timed out waiting for the "
            f"SQLite write lock ({text}); another process holds it, so retry "
            f"or raise busy_timeout_s"
        )
    return FeedbackStoreError(f"Failed to {action} in {path}: {text}")


def _cannot_open_message(path: Path, text: str) -> str:
    parent = path.parent
    if not parent.is_dir():
        return (
            f"Cannot open feedback store {path} ({text}): the directory "
            f"{parent} does not exist; create it first"
        )
    return (
        f"Cannot open feedback store {path} ({text}). The process needs "
        f"permission to create the file and its -wal and -shm files in "
        f"{parent}; fix the permissions or pass a path in a writable "
        f"directory"
    )


class ConnectionPool:
    """Connections to one file, each used by one thread at a time.

    A pool, unlike a connection per thread, stays bounded under servers
    that start a thread per request. After a fork, the child opens its own
    connections, because SQLite connections must not cross a fork.
    """

    def __init__(self, path: Path, busy_timeout_s: float, wal_limit_bytes: int) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._wal_limit_bytes = wal_limit_bytes
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        # Connections inherited across a fork. They are kept referenced and
        # never closed, since closing one in the child could disturb the
        # parent's locks on the same file.
        self._inherited: list[sqlite3.Connection] = []

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection for the duration of the block."""
        conn = self._take()
        try:
            yield conn
        except BaseException:
            # A connection left inside a transaction, for example by an
            # interrupted ROLLBACK, is not lent again.
            if conn.in_transaction:
                conn.close()
            else:
                self._give_back(conn)
            raise
        self._give_back(conn)

    def close(self) -> None:
        """Close the idle connections; lent ones close when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise FeedbackStoreError(
                    f"Feedback store {self._path} is closed; open a new PredictionStore"
                )
            if os.getpid() != self._pid:
                self._inherited.extend(self._idle)
                self._idle = []
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        return connect(self._path, self._busy_timeout_s, self._wal_limit_bytes)

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            keep = (
                not self._closed
                and os.getpid() == self._pid
                and len(self._idle) < _MAX_IDLE_CONNECTIONS
            )
            if keep:
                self._idle.append(conn)
                return
        conn.close()
