"""Nothing stuck, nothing lost (npae/data/locks.py): one process at a time writes a checkpoint path,
a lock whose owner is gone (dead, or its pid recycled by an unrelated process) is taken over, every
failure path releases the lock, and a save killed by -9 leaves no temporary file after the next save.
"""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import npae
from npae.app import runs
from npae.data import locks
from npae.training.loop import StaleLockWarning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
X = np.random.default_rng(0).random((40, 6))
#: Telling a recycled pid from its first owner reads /proc (elsewhere only a dead pid is stale).
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")


def small(seed=0):
    return npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=seed)


def lock_path(checkpoint):
    return locks.checkpoint_lock(checkpoint).path


def write_lock(path, **holder):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(holder, fh)


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def sleeper():
    """A live process that is not an npae run (and not Python): ``sleep 30``."""
    proc = subprocess.Popen(["sleep", "30"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # its command line is empty for an instant after it starts
        with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
            if fh.read():
                break
        time.sleep(0.005)
    yield proc
    proc.kill()
    proc.wait()


# ------------------------------------------------------------------------------- two fits, one path
RACER = r"""
import os, sys, time
import numpy as np
import npae
from npae.data import locks
seed, path, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=seed)
trained = []
step = model._train_batch
def slow_step(*batch):  # a long fit: the first batch takes 2 s
    if not trained:
        print("training", flush=True)
        time.sleep(2.0)
    trained.append(1)
    return step(*batch)
model._train_batch = slow_step
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
try:
    model.fit(np.random.default_rng(0).random((40, 6)), epochs=2, progress=False, checkpoint=path)
except locks.FileInUse as exc:
    print(f"refused after {len(trained)} batches: {exc}", flush=True)
    sys.exit(3)
print("done", flush=True)
"""


def test_two_processes_fitting_into_one_checkpoint(tmp_path):
    """Started together: one trains, the other is refused before its first batch with an error
    naming the path and the winner's pid; the checkpoint is the winner's."""
    path, go = tmp_path / "ckpt.npz", tmp_path / "go"
    procs = {seed: subprocess.Popen([sys.executable, "-c", RACER, str(seed), str(path), str(go)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for seed in (1, 2)}
    for p in procs.values():
        assert p.stdout.readline().strip() == "ready"
    go.write_text("")
    done = {seed: (p.wait(timeout=60), *p.communicate()) for seed, p in procs.items()}
    codes = sorted(code for code, _, _ in done.values())
    assert codes == [0, 3], done
    winner = next(seed for seed, (code, _, _) in done.items() if code == 0)
    loser_out = done[3 - winner][1]
    assert "refused after 0 batches: checkpoint" in loser_out and str(path) in loser_out
    assert f"pid {procs[winner].pid} on {socket.gethostname()}" in loser_out
    assert npae.load(str(path)).config["seed"] == winner
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz", "go"]  # no lock, no temporary file


def test_a_second_fit_in_the_same_process_is_refused_while_the_first_holds_it(tmp_path):
    path = tmp_path / "ckpt.npz"
    with locks.checkpoint_lock(path):
        with pytest.raises(locks.FileInUse, match=f"checkpoint '{path}' is in use .*pid {os.getpid()}"):
            small().fit(X, epochs=1, progress=False, checkpoint=path)
    assert not path.exists()
    small().fit(X, epochs=1, progress=False, checkpoint=path)
    assert path.exists() and not os.path.exists(lock_path(path))


# ------------------------------------------------------------------------------- stale locks
@needs_proc
def test_a_lock_naming_a_recycled_pid_is_taken_over(tmp_path, sleeper):
    """The lock names a pid that now belongs to ``sleep``: with a start time that is not sleep's,
    and (as an older npae wrote it) without one: both are taken over with a one-line warning."""
    path = tmp_path / "ckpt.npz"
    for extra in ({"proc_start": 12345}, {}):
        write_lock(lock_path(path), pid=sleeper.pid, host=socket.gethostname(), started=time.time(),
                   command="python train.py", **extra)
        with pytest.warns(StaleLockWarning, match=f"pid {sleeper.pid} .*belongs to another process"):
            small().fit(X, epochs=1, progress=False, checkpoint=path)
        assert path.exists() and not os.path.exists(lock_path(path))
    assert sleeper.poll() is None  # the unrelated process is left alone


@needs_proc
def test_a_run_folder_lock_naming_a_recycled_pid_is_taken_over(tmp_path, sleeper):
    folder = tmp_path / "run"
    folder.mkdir()
    write_lock(folder / runs.LOCK_NAME, pid=sleeper.pid, host=socket.gethostname(), started=time.time(),
               command="npae train vae")
    with runs.RunLock(folder) as lock:
        assert lock.took_over["pid"] == sleeper.pid
        assert "belongs to another process" in lock.note()


@needs_proc
def test_a_lock_of_a_live_python_process_with_its_start_time_is_refused(tmp_path):
    path = tmp_path / "ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_lock(lock_path(path), pid=proc.pid, host=socket.gethostname(), started=time.time(),
                   proc_start=locks.process_start(proc.pid), command="python train.py")
        with pytest.raises(locks.FileInUse, match=f"pid {proc.pid} on .*python train.py"):
            small().fit(X, epochs=1, progress=False, checkpoint=path)
    finally:
        proc.kill()
        proc.wait()
    assert os.path.exists(lock_path(path)) and not path.exists()


def test_an_empty_lock_is_refused_while_young_and_taken_over_when_old(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / runs.LOCK_NAME
    lock.write_text("")
    with pytest.raises(runs.FolderInUse, match="unreadable lock file"):
        runs.RunLock(folder).acquire(timeout=0.05)
    old = time.time() - 2 * locks.EMPTY_LOCK_SECONDS
    os.utime(lock, (old, old))
    with runs.RunLock(folder) as taken:
        assert "empty" in taken.note()


# ------------------------------------------------------------------------------- failure paths
def test_disk_full_while_taking_a_lock_leaves_no_lock(tmp_path, monkeypatch):
    folder = tmp_path / "run"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(runs.OutputError, match="No space left on device"):
        runs.RunLock(folder).acquire()
    with pytest.raises(OSError, match="No space left on device"):
        small().fit(X, epochs=1, progress=False, checkpoint=tmp_path / "ckpt.npz")
    assert os.listdir(folder) == [] and os.listdir(tmp_path) == ["run"]
    monkeypatch.undo()
    with runs.RunLock(folder):  # the next run is not refused
        pass


def test_disk_full_while_writing_a_checkpoint_releases_the_lock(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    real = os.fsync

    def full(fd):  # the disk fills up after the lock is taken
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name an fd's file")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left on device"):
        small().fit(X, epochs=2, progress=False, checkpoint=path)
    assert os.listdir(tmp_path) == []  # no lock, no temporary file
    monkeypatch.undo()
    small().fit(X, epochs=1, progress=False, checkpoint=path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_an_error_during_training_releases_the_lock(tmp_path):
    path = tmp_path / "ckpt.npz"
    model = small()

    def broken(*batch):
        raise RuntimeError("a bug in a model")
    model._train_batch = broken
    with pytest.raises(RuntimeError, match="a bug in a model"):
        model.fit(X, epochs=1, progress=False, checkpoint=path)
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError):  # an error before the lock is taken: nothing to release
        small().fit(X, epochs=1, progress=False, checkpoint=tmp_path / "missing" / "ckpt.npz")


# ------------------------------------------------------------------------------- killed saves
KILLED_SAVE = r"""
import sys, time
import numpy as np
import npae
from npae.data import io
def slow(fh, **arrays):  # np.savez that stops half-way, as a save killed by -9 would
    fh.write(b"PK half a model")
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)
io.np.savez = slow
model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
model.fit(np.random.default_rng(0).random((40, 6)), epochs=1, progress=False)
model.save(sys.argv[1])
"""


def test_a_save_killed_by_sigkill_leaves_nothing_after_the_next_save(tmp_path):
    path = tmp_path / "model.npz"
    model = small().fit(X, epochs=1, progress=False)
    model.save(path)
    before = path.read_bytes()
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)], stdout=subprocess.PIPE,
                                 text=True, env=ENV)
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    left = sorted(n for n in os.listdir(tmp_path) if n.endswith(".tmp"))
    # each save removed the one killed before it: they never pile up; the saved file is untouched
    assert len(left) == 1 and path.read_bytes() == before
    # what must stay: a live writer's temp file (this process's), a young temp of an older npae,
    # the user's own files that only look alike
    # another host's (its pid means nothing here), the user's own files that only look alike
    live = f"{locks.temp_prefix(path)}abcd1234.tmp"
    elsewhere = "000000" if locks.host_tag() != "000000" else "111111"
    foreign = f".model.npz.{dead_pid()}-99-h{elsewhere}.abcd1234.tmp"
    keep = [live, ".model.npz.x1y2z3w4.tmp", foreign, "model.npz.backup.tmp", ".other.npz.1.abcdefgh.tmp"]
    for name in keep:
        (tmp_path / name).write_bytes(b"keep me")
    old = tmp_path / ".model.npz.oldsaver.tmp"  # an older npae's, untouched for longer than a save takes
    old.write_bytes(b"half")
    when = time.time() - 2 * locks.UNNAMED_TEMP_SECONDS
    os.utime(old, (when, when))
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(["model.npz", *keep])
    assert npae.load(str(path)).config == model.config
    removed = locks.clean_stale_temps(path)  # nothing more to remove
    assert removed == []
