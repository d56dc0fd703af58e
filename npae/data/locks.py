"""Who owns a file being written: lock files that name a live npae process, and temporary files of
writers that are gone. Standard library only (the ``npae`` command's folder lock,
:class:`npae.app.runs.RunLock`, is built on :class:`FileLock`).

* **One writer per file.** :class:`FileLock` creates a lock file with ``O_CREAT | O_EXCL`` (the
  operating system lets exactly one process create it) holding JSON: the holder's ``pid``, ``host``,
  ``started``, ``command``, ``proc_start`` (the process's start time in clock ticks since boot, from
  ``/proc/<pid>/stat``) and a random ``token``. ``fit(..., checkpoint=p)`` holds
  :func:`checkpoint_lock` of ``p`` for the whole fit, so a second process fitting into ``p`` is
  refused (:class:`FileInUse`, naming ``p`` and the holder) before it trains.
* **A lock whose owner is gone** is taken over (``took_over`` and ``took_over_why`` say whose and
  why): its pid no longer runs, or the pid now belongs to another process (its start time is not
  the recorded one; a lock without a start time, written by an older npae, counts as another
  process's when that process is not a Python interpreter), or the file is empty and older than
  :data:`EMPTY_LOCK_SECONDS` (its writer died between creating it and writing it). A lock held on
  another host is never guessed about.
* **Released on every path.** A lock that cannot be written (disk full) is removed before the error
  is raised; :meth:`FileLock.release` removes the file only while it holds this lock's token.
* **Temporary files of killed saves.** An atomic write names its temporary file
  ``.<target>.<pid>-<start>-h<host>.<random>.tmp`` (:func:`temp_prefix`): whether its writer still
  runs is then a question with an exact answer (on its own host). :func:`clean_stale_temps`
  removes those of ``target`` whose writer is gone; every model save calls it first
  (:func:`npae.data.io.write`).
"""
import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import socket
import sys
import tempfile
import time

#: An empty lock file older than this (seconds) is debris: writing a lock takes microseconds.
EMPTY_LOCK_SECONDS = 10.0
#: A temporary file without a pid in its name (an older npae's model saver) is a killed save's once
#: nobody has written to it for this long (seconds).
UNNAMED_TEMP_SECONDS = 600.0

#: The tail of a temporary file's name after ``.<target>.``: ``<pid>[-<start>][-h<host>].<random>.tmp``
#: (``<host>``: :func:`host_tag`) or, from older writers, ``<random>.tmp``.
TEMP_TAIL = re.compile(r"^(?:(?P<pid>\d+)(?:-(?P<start>\d+))?(?:-h(?P<host>[0-9a-f]{6}))?\.)?"
                       r"(?P<random>[A-Za-z0-9_]+)\.tmp$")


class FileInUse(OSError):
    """Another live npae process holds the lock. ``holder``: the lock's content (pid, host, ...)."""

    def __init__(self, message, holder):
        super().__init__(message)
        self.errno = errno.EBUSY
        self.holder = holder

    def __str__(self):
        return self.args[0]


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


def process_start(pid):
    """The start time of process ``pid`` in clock ticks since boot (field 22 of ``/proc/<pid>/stat``),
    or None where there is no ``/proc`` or no such process. Two processes that share a pid, one
    after the other, never share it."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])  # after "(comm) ": state is field 3
    except (OSError, ValueError, IndexError):
        return None


def _is_python(pid):
    """Whether process ``pid`` runs a Python interpreter (True when that cannot be told: no
    ``/proc``, or an empty command line, as a process has for an instant while it starts)."""
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as fh:
            first = fh.read().split(b"\0")[0]
    except OSError:
        return True
    return not first or b"python" in os.path.basename(first).lower() or b"npae" in first.lower()


def writer_gone(pid, start=None):
    """Why process ``pid`` (started at ``start`` ticks, when known) is not the writer it was, or
    None while it may still be: ``"it no longer runs"`` or ``"its pid now belongs to another
    process"``."""
    if not pid_alive(pid):
        return "it no longer runs"
    if pid == os.getpid() and (start is None or start == process_start(pid)):
        return None
    now = process_start(pid)
    if start is not None and now is not None and now != start:
        return "its pid now belongs to another process"
    if start is None and not _is_python(pid):
        return "its pid now belongs to another process (not a Python interpreter)"
    return None


def _host():
    return socket.gethostname()


def host_tag():
    """Six hex digits that tell this host's temporary files from another's (a folder shared over
    NFS, or by containers with their own pids): a pid is judged only on its own host."""
    return hashlib.sha256(_host().encode("utf-8", "replace")).hexdigest()[:6]


# ---------------------------------------------------------------------------------------- the lock
class FileLock:
    """An exclusive lock file at ``path``, as a context manager::

        with FileLock("out/.checkpoint.npz.npae-lock", what="checkpoint 'out/checkpoint.npz'") as lock:
            ...  # lock.took_over: the holder (dict) of a stale lock replaced, else None

    ``what`` names the thing locked in the refusal's message. Releasing removes the file only while
    it is still this lock's (same token).
    """

    def __init__(self, path, *, what=None, command=None):
        self.path = os.fspath(path)
        self.what = what or f"lock {self.path!r}"
        self.command = command if command is not None else " ".join(sys.argv)
        self.took_over = self.took_over_why = None
        self._token = None
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
        """Why the lock ``holder`` is stale (a sentence), or None while its owner may still run.
        Judged only on this host; an empty lock file by its age."""
        if not holder:
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                if st.st_size == 0 and time.time() - st.st_mtime > EMPTY_LOCK_SECONDS:
                    return f"the lock file is empty and {EMPTY_LOCK_SECONDS:g} s old (its writer died)"
            return None
        pid, start = holder.get("pid"), holder.get("proc_start")
        if holder.get("host") != _host() or not isinstance(pid, int) or isinstance(pid, bool):
            return None
        return writer_gone(pid, start if isinstance(start, int) else None)

    @staticmethod
    def describe(holder):
        pid, host = holder.get("pid", "?"), holder.get("host", "?")
        started = holder.get("started")
        when = f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" if \
            isinstance(started, (int, float)) else ""
        what = f": {holder['command']}" if holder.get("command") else ""
        return f"pid {pid} on {host}{when}{what}"

    def note(self):
        """One line on the stale lock taken over (None when none was)."""
        if self.took_over is None:
            return None
        who = self.describe(self.took_over) if self.took_over else "an empty lock file"
        return f"took over the lock {self.path} of {who}: {self.took_over_why}"

    # -- taking it
    def _create(self):
        """Try to create the lock file; True if this process now holds it. A lock file that cannot
        be written whole (disk full) is removed before the error goes up: no lock is left behind."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        token = secrets.token_hex(8)
        record = {"pid": os.getpid(), "host": _host(), "started": time.time(),
                  "proc_start": process_start(os.getpid()), "token": token, "command": self.command}
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # ours: O_EXCL created it
            raise
        self._token, self._held = token, True
        return True

    def _break_stale(self, holder, why):
        """Remove the stale lock ``holder``; only one process at a time may (a second, tiny lock
        ``<lock>.breaking`` decides which), and only if the file still holds ``holder``."""
        breaker = self.path + ".breaking"
        try:
            fd = os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            with contextlib.suppress(OSError):  # a breaker that died while breaking
                if time.time() - os.stat(breaker).st_mtime > 10.0:
                    os.unlink(breaker)
            time.sleep(0.01)
            return
        try:
            os.close(fd)
            if self._read() == holder:
                os.unlink(self.path)
                self.took_over, self.took_over_why = holder, why
        finally:
            with contextlib.suppress(OSError):
                os.unlink(breaker)

    def in_use(self, holder):
        """The error raised when a live process holds the lock (subclasses word it their way)."""
        who = self.describe(holder) if holder else "an unreadable lock file"
        return FileInUse(f"{self.what} is in use by another npae process ({who}; lock {self.path}); "
                         f"wait for it to finish or choose another path", holder)

    def acquire(self, timeout=2.0):
        """Take the lock or raise :meth:`in_use`'s error (``OSError`` when it cannot be written)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._create():
                return self
            holder = self._read()
            if holder is None:  # released between our try and our look: try again
                continue
            why = self._stale(holder)
            if why is not None:
                self._break_stale(holder, why)
                continue
            if not holder and time.monotonic() < deadline:  # being written this instant
                time.sleep(0.02)
                continue
            raise self.in_use(holder or {})

    def release(self):
        if self._held:
            holder = self._read()
            if holder and holder.get("token") == self._token:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            self._held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def checkpoint_lock(path):
    """The :class:`FileLock` of the file ``path`` (``<folder>/.<name>.npae-lock``), not yet taken."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    return FileLock(os.path.join(folder, f".{name}.npae-lock"), what=f"checkpoint {path!r}")


# ---------------------------------------------------------------------------------------- temp files
def temp_prefix(path):
    """The name prefix of an atomic write's temporary file for ``path``:
    ``.<name>.<pid>-<start>-h<host>.`` (the random part and ``.tmp`` follow), so
    :func:`clean_stale_temps` can tell a live writer's."""
    start = process_start(os.getpid())
    owner = f"{os.getpid()}-{start}" if start is not None else f"{os.getpid()}"
    return f".{os.path.basename(os.fspath(path))}.{owner}-h{host_tag()}."


def write_atomic(path, data):
    """Write ``data`` to ``path`` so that ``path`` is always either the old file or the whole new one:
    the one atomic writer of npae (model files, run files, callbacks' files).

    ``data``: bytes, str (UTF-8) or a function called with a binary file object that writes the
    content. The bytes go to a temporary file beside ``path`` named by :func:`temp_prefix`, are
    flushed and fsynced, get the permissions of the file they replace (else 0o644) and are renamed
    over ``path``; the folder is then fsynced so that the rename itself survives a crash. Any failure
    (a KeyboardInterrupt included) removes the temporary file, leaves ``path`` as it was and
    re-raises. Returns ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    mode = 0o644
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode & 0o777  # keep the permissions of the file replaced
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # the rename made durable (POSIX)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def temp_is_stale(tail, full):
    """Whether the temporary file at ``full``, whose name ends in ``tail`` (what follows
    ``.<target>.``), was left by a writer that is gone: its pid, on this host, no longer runs or is
    another process now. A name without a pid (an older writer's) or of another host: once nobody
    has written to it for :data:`UNNAMED_TEMP_SECONDS`."""
    m = TEMP_TAIL.match(tail)
    if m is None:
        return False
    if m.group("pid") is None or m.group("host") not in (None, host_tag()):
        try:
            return time.time() - os.stat(full).st_mtime > UNNAMED_TEMP_SECONDS
        except OSError:
            return False
    start = m.group("start")
    return writer_gone(int(m.group("pid")), int(start) if start is not None else None) is not None


def remove_temps(folder, is_stale):
    """Remove the regular files of ``folder`` (no links, no folders) whose name and path
    ``is_stale(name, full)`` calls stale; returns the names removed. Files that vanish or refuse
    meanwhile are left to the next call."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for entry in names:
        full = os.path.join(folder, entry)
        with contextlib.suppress(OSError):
            if os.path.isfile(full) and not os.path.islink(full) and is_stale(entry, full):
                os.unlink(full)
                removed.append(entry)
    return removed


def clean_stale_temps(path):
    """Remove the temporary files that killed atomic writes of ``path`` left beside it (names
    ``.<name>.<pid>-<start>-h<host>.<random>.tmp`` and older ``.<name>.<random>.tmp``) whose writer
    is gone (:func:`temp_is_stale`);
    a live writer's stay, and so does every file of another name. Returns the names removed."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    lead = f".{name}."
    return remove_temps(folder, lambda entry, full: entry.startswith(lead) and entry.endswith(".tmp")
                        and temp_is_stale(entry[len(lead):], full))
