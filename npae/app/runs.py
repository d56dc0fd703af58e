"""Output folders of the ``npae`` command: one run per folder, and files that are whole or absent.

Three things go wrong when runs share a folder or die half-way, and each has its tool here:

* **Two runs into one folder.** :class:`RunLock` takes the folder for one run: it creates
  ``<folder>/.npae-lock`` with ``O_CREAT | O_EXCL`` (the operating system lets exactly one
  process create it) holding the holder's pid, its start time, host and command (a
  :class:`npae.data.locks.FileLock`, the lock ``fit(..., checkpoint=...)`` also takes). A second
  run gets a :class:`FolderInUse` error naming the folder and the holder. A lock left by a process
  that no longer runs (killed, power cut), or whose pid now belongs to another process, is taken
  over; one held on another host is never guessed about. A lock that cannot be written (disk
  full) is removed at once, and every way a run ends releases it.
* **A file half written.** :func:`atomic_write` writes to a temporary file next to the target,
  flushes it to disk, then renames it over the target (``os.replace``), so a reader sees the old
  file or the new one, never a 0-byte or half-written one. A failure (disk full, no permission)
  raises :class:`OutputError` naming the target.
* **A second run over a first.** :func:`holds_run` tells whether a folder already holds a run's
  files; :func:`claim_new_folder` takes ``runs/vae-digits``, or ``runs/vae-digits-2``, ``-3``, ...,
  the first that holds no run, so repeating a command never replaces what an earlier run saved.
* **Leftovers of a killed save.** Temporary files are named ``.<target>.<pid>-<start>-h<host>.<random>.tmp``
  (here and in the model saver, :func:`npae.data.io._write_atomic`; an older model saver wrote
  ``.<target>.<random>.tmp``). :func:`clean_stale_temps` removes those of processes that are gone;
  call it once the folder's lock is held (then no other run writes there).

:func:`check_writable` proves a folder writable before any training time is spent, with a probe
file of a unique name (two runs probing at once never collide).
"""
import contextlib
import errno
import json
import os
import re
import tempfile

from npae.data.locks import (TEMP_TAIL, FileLock, _host, remove_temps, temp_is_stale,
                             write_atomic)

LOCK_NAME = ".npae-lock"

#: A temporary file of an atomic write: ``.<target>.<tail>``, the tail as in
#: :data:`npae.data.locks.TEMP_TAIL` (``<pid>-<start>-h<host>.<random>.tmp``, or an older model
#: saver's ``<random>.tmp``).
_TEMP_NAME = re.compile(r"^\.(?P<target>.+?)\.(?P<tail>(?:\d+(?:-\d+)?(?:-h[0-9a-f]{6})?\.)?"
                        r"[A-Za-z0-9_]+\.tmp)$")


class OutputError(OSError):
    """A file or folder of a run that cannot be written; the message names it and says why."""

    def __init__(self, message, errno_=None):
        super().__init__(message)
        self.errno = errno_

    def __str__(self):
        return self.args[0]


class FolderInUse(OutputError):
    """Another run holds the output folder's lock. ``holder``: the lock's content (pid, host, ...)."""

    def __init__(self, message, holder):
        super().__init__(message, errno.EBUSY)
        self.holder = holder


def _why(exc):
    return exc.strerror or str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------- the lock
class RunLock(FileLock):
    """The exclusive lock of one output folder (``<folder>/.npae-lock``, a
    :class:`npae.data.locks.FileLock`), as a context manager::

        with RunLock("runs/vae-digits") as lock:
            ...  # lock.took_over: the holder (dict) of a stale lock that was replaced, else None

    Acquiring creates the folder if needed. The lock file holds JSON: ``pid``, ``host``,
    ``started`` (Unix time), ``proc_start``, ``token`` and ``command``. A lock whose process is gone
    or whose pid now belongs to another process is taken over (:meth:`note` says whose and why).
    Releasing removes it only while it is still this lock's; a lock that cannot be written (disk
    full) is never left behind.
    """

    def __init__(self, folder, command=None):
        self.folder = os.fspath(folder)
        super().__init__(os.path.join(self.folder, LOCK_NAME), what=f"output folder {self.folder!r}",
                         command=command)

    def in_use(self, holder):
        who = self.describe(holder) if holder else "an unreadable lock file"
        if holder and holder.get("host") != _host():
            hint = " on another host; remove the lock file if that run is over"
        elif not holder:
            hint = "; remove it if no run is using the folder"
        else:
            hint = "; wait for it to finish or choose another --out"
        return FolderInUse(f"output folder {self.folder!r} is in use by another npae run "
                           f"({who}; lock {self.path}){hint}", holder)

    def acquire(self, timeout=2.0):
        """Take the folder's lock or raise :class:`FolderInUse` (or :class:`OutputError` when the
        folder cannot be made or written)."""
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {self.folder!r}: {_why(exc)}",
                              exc.errno) from None
        try:
            return super().acquire(timeout)
        except FolderInUse:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write to output folder {self.folder!r}: {_why(exc)}",
                              exc.errno) from None


# ---------------------------------------------------------------------------------------- run folders
#: The files whose presence says a folder already holds a run (finished, or stopped with a checkpoint).
RUN_FILES = ("model.npz", "checkpoint.npz", "metrics.json")

#: How many numbered folders ``claim_new_folder`` tries before it gives up.
MAX_NUMBERED_FOLDERS = 10_000


def holds_run(folder):
    """The run files (names from :data:`RUN_FILES`) that ``folder`` holds; empty when none."""
    return [name for name in RUN_FILES if os.path.lexists(os.path.join(os.fspath(folder), name))]


def claim_new_folder(base):
    """Lock and return (as a held :class:`RunLock`) the first of ``base``, ``base-2``, ``base-3``, ...
    that holds no run and no other run's lock: what experiment trackers do, so that running the
    same command twice keeps the first run's files byte for byte."""
    base = os.fspath(base).rstrip(os.sep) or os.sep
    for number in range(1, MAX_NUMBERED_FOLDERS + 1):
        folder = base if number == 1 else f"{base}-{number}"
        if holds_run(folder):
            continue
        lock = RunLock(folder)
        try:
            lock.acquire(timeout=0.5)
        except FolderInUse:
            continue
        if holds_run(folder):  # another run finished there between our look and our lock
            lock.release()
            continue
        return lock
    raise OutputError(f"{base!r} and {MAX_NUMBERED_FOLDERS - 1} numbered folders beside it all hold "
                      f"runs; give --out a new folder")


# ---------------------------------------------------------------------------------------- writing
def check_writable(folder):
    """Prove ``folder`` writable by creating and removing a probe file of a unique name."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".npae-write-test.", suffix=".probe", dir=folder)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {os.fspath(folder)!r}: {_why(exc)}",
                          exc.errno) from None


def atomic_write(path, data):
    """Write ``data`` to ``path`` so that ``path`` is always either the old file or the whole new one
    (:func:`npae.data.locks.write_atomic`: bytes, str or a function writing to a binary file; a
    temporary file ``.<name>.<pid>-<start>-h<host>.<random>.tmp`` beside it, fsynced, renamed over
    it with the permissions of the file it replaces). Any failure removes the temporary file, leaves
    ``path`` as it was, and raises :class:`OutputError` naming ``path`` (a KeyboardInterrupt is
    re-raised as it is, after the same clean-up). Returns ``path``.
    """
    path = os.fspath(path)
    try:
        return write_atomic(path, data)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}", exc.errno) from None


def write_json(path, obj):
    """:func:`atomic_write` of ``obj`` as indented JSON (NumPy scalars as numbers)."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write(path, text)


def _json_default(value):
    item = getattr(value, "item", None)  # NumPy scalars
    if callable(item):
        return item()
    tolist = getattr(value, "tolist", None)  # NumPy arrays
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@contextlib.contextmanager
def naming(path, what="write"):
    """Turn an ``OSError`` raised inside the block into an :class:`OutputError` that names ``path``
    (for writers that are not :func:`atomic_write`, e.g. a model save, whose disk-full error names
    no file)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot {what} {os.fspath(path)}: {_why(exc)}", exc.errno) from None


def clean_stale_temps(folder):
    """Remove the temporary files that killed atomic writes left in ``folder``; returns their names.

    A name with a pid (``.<target>.<pid>-<start>-h<host>.<random>.tmp``) is removed when its
    writer is gone (:func:`npae.data.locks.temp_is_stale`: the process no longer runs, or the pid is
    another process's now); one without (an older model saver's ``.<target>.<random>.tmp``)
    always: the caller holds the folder's :class:`RunLock`, so no other run is writing there now.
    """
    def stale(name, full):
        m = _TEMP_NAME.match(name)
        if m is None:
            return False
        tail = m.group("tail")  # without a pid: an older saver's, and the folder is ours
        return TEMP_TAIL.match(tail).group("pid") is None or temp_is_stale(tail, full)

    return remove_temps(folder, stale)
