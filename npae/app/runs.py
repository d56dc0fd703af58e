"""Output folders of the ``npae`` command: one run per folder, and files that are whole or absent.

Three things go wrong when runs share a folder or die half-way, and each has its tool here:

* **Two runs into one folder.** :class:`RunLock` takes the folder for one run: it creates
  ``<folder>/.npae-lock`` with ``O_CREAT | O_EXCL`` (the operating system lets exactly one
  process create it) holding the holder's pid, host and command. A second run gets a
  :class:`FolderInUse` error naming the folder and the holder. A lock left by a process that no
  longer runs (killed, power cut) is taken over; one held on another host is never guessed about.
* **A file half written.** :func:`atomic_write` writes to a temporary file next to the target,
  flushes it to disk, then renames it over the target (``os.replace``), so a reader sees the old
  file or the new one, never a 0-byte or half-written one. A failure (disk full, no permission)
  raises :class:`OutputError` naming the target.
* **A second run over a first.** :func:`holds_run` tells whether a folder already holds a run's
  files; :func:`claim_new_folder` takes ``runs/vae-digits``, or ``runs/vae-digits-2``, ``-3``, ...,
  the first that holds no run, so repeating a command never replaces what an earlier run saved.
* **Leftovers of a killed save.** Temporary files are named ``.<target>.<random>.tmp`` (the model
  saver's :func:`npae.data.io._write_atomic`) or ``.<target>.<pid>.<random>.tmp`` (here).
  :func:`clean_stale_temps` removes those of processes that no longer run; call it once the
  folder's lock is held (then no other run writes there).

:func:`check_writable` proves a folder writable before any training time is spent, with a probe
file of a unique name (two runs probing at once never collide).
"""
import contextlib
import errno
import json
import os
import re
import socket
import sys
import tempfile
import time

LOCK_NAME = ".npae-lock"

#: A temporary file of an atomic write: ``.<target>.<random>.tmp`` or ``.<target>.<pid>.<random>.tmp``.
_TEMP_NAME = re.compile(r"^\.(?P<target>.+?)\.(?:(?P<pid>\d+)\.)?(?P<random>[A-Za-z0-9_]+)\.tmp$")


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


# ---------------------------------------------------------------------------------------- processes
def pid_alive(pid):
    """True when a process ``pid`` exists on this host (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # e.g. an absurd pid number
        return False
    return True


def _host():
    return socket.gethostname()


# ---------------------------------------------------------------------------------------- the lock
class RunLock:
    """The exclusive lock of one output folder, as a context manager::

        with RunLock("runs/vae-digits") as lock:
            ...  # lock.took_over: the holder (dict) of a stale lock that was replaced, else None

    Acquiring creates the folder if needed. The lock file holds JSON: ``pid``, ``host``,
    ``started`` (Unix time) and ``command``. Releasing removes it only while it is still this
    process's own.
    """

    def __init__(self, folder, command=None):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.command = command if command is not None else " ".join(sys.argv)
        self.took_over = None
        self._held = False

    # -- reading
    def _read(self):
        """The holder recorded in the lock file (a dict), None if the file is gone, ``{}`` if it
        is empty or not JSON (being written, or garbage)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        try:
            holder = json.loads(text)
        except ValueError:
            return {}
        return holder if isinstance(holder, dict) else {}

    def _stale(self, holder):
        """Whether ``holder`` is a lock whose process is gone (judged only on this host)."""
        pid = holder.get("pid")
        if holder.get("host") != _host() or not isinstance(pid, int):
            return False
        return not pid_alive(pid)

    @staticmethod
    def describe(holder):
        pid, host = holder.get("pid", "?"), holder.get("host", "?")
        started = holder.get("started")
        when = f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" if \
            isinstance(started, (int, float)) else ""
        what = f": {holder['command']}" if holder.get("command") else ""
        return f"pid {pid} on {host}{when}{what}"

    # -- taking it
    def _create(self):
        """Try to create the lock file; True if this process now holds it."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        record = {"pid": os.getpid(), "host": _host(), "started": time.time(),
                  "command": self.command}
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        self._held = True
        return True

    def _break_stale(self, holder):
        """Remove the stale lock ``holder``; only one process at a time may (a second, tiny lock
        ``.npae-lock.breaking`` decides which), and only if the file still holds ``holder``."""
        breaker = self.path + ".breaking"
        try:
            fd = os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            with contextlib.suppress(OSError):  # a breaker that died while breaking
                if time.time() - os.stat(breaker).st_mtime > 10.0:
                    os.unlink(breaker)
            return
        try:
            os.close(fd)
            if self._read() == holder:
                os.unlink(self.path)
                self.took_over = holder
        finally:
            with contextlib.suppress(OSError):
                os.unlink(breaker)

    def acquire(self, timeout=2.0):
        """Take the folder's lock or raise :class:`FolderInUse` (or :class:`OutputError` when the
        folder cannot be made or written)."""
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {self.folder!r}: {_why(exc)}",
                              exc.errno) from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._create():
                    return self
            except OSError as exc:
                raise OutputError(f"cannot write to output folder {self.folder!r}: {_why(exc)}",
                                  exc.errno) from None
            holder = self._read()
            if holder is None:  # released between our try and our look: try again
                continue
            if holder and self._stale(holder):
                self._break_stale(holder)
                continue
            if not holder and time.monotonic() < deadline:  # being written this instant
                time.sleep(0.02)
                continue
            if not holder:
                holder = {}
                who = "an unreadable lock file"
            else:
                who = self.describe(holder)
            if holder and holder.get("host") != _host():
                hint = " on another host; remove the lock file if that run is over"
            elif not holder:
                hint = "; remove it if no run is using the folder"
            else:
                hint = "; wait for it to finish or choose another --out"
            raise FolderInUse(f"output folder {self.folder!r} is in use by another npae run "
                              f"({who}; lock {self.path}){hint}", holder)

    def release(self):
        if self._held:
            holder = self._read()
            if holder and holder.get("pid") == os.getpid() and holder.get("host") == _host():
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            self._held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


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
    """Write ``data`` to ``path`` so that ``path`` is always either the old file or the whole new one.

    ``data``: bytes, str (UTF-8), or a function called with a binary file object that writes the
    content. The bytes go to ``.<name>.<pid>.<random>.tmp`` in the same folder, are flushed and
    fsynced, get the permissions of the file they replace (else 0o644), and are renamed over
    ``path``; the folder is fsynced so that the rename itself survives a crash. Any failure
    removes the temporary file, leaves ``path`` as it was, and raises :class:`OutputError` naming
    ``path`` (a KeyboardInterrupt is re-raised as it is, after the same clean-up). Returns ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    mode = 0o644
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode & 0o777
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp",
                                   dir=folder)
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}", exc.errno) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    with contextlib.suppress(OSError, AttributeError):  # the rename made durable (POSIX)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


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

    A name with a pid (``.<target>.<pid>.<random>.tmp``) is removed when that process no longer
    runs; one without (the model saver's ``.<target>.<random>.tmp``) always: the caller holds the
    folder's :class:`RunLock`, so no other run is writing into the folder now.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _TEMP_NAME.match(name)
        if m is None:
            continue
        pid = m.group("pid")
        if pid is not None and (int(pid) == os.getpid() or pid_alive(int(pid))):
            continue  # being written by a live process
        full = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if os.path.isfile(full) and not os.path.islink(full):
                os.unlink(full)
                removed.append(name)
    return removed
