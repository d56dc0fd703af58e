"""Output folders: one run per folder (an exclusive lock, stale locks taken over), a write probe
that never collides, atomic writes that leave the old file on any failure and name the file, and
the clean-up of temporary files that killed saves leave behind."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import npae
from npae.app import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
#: A child's first lines: npae/app/runs.py and npae/data/locks.py loaded on their own (they need only
#: the standard library; the packages above them are stubs that run no __init__), so that children
#: start in milliseconds, not after importing numpy and numba.
LOAD_RUNS = ("import sys, types\n"
             "for name in ('npae', 'npae.data', 'npae.app'):\n"
             "    stub = types.ModuleType(name)\n"
             f"    stub.__path__ = [{os.path.join(ROOT, '')!r} + name.replace('.', '/')]\n"
             "    sys.modules[name] = stub\n"
             "from npae.app import runs\n"
             "assert 'numpy' not in sys.modules\n")


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_lock(folder, **holder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.LOCK_NAME).write_text(json.dumps(holder))


# ---------------------------------------------------------------------------------------- the lock
def test_lock_is_exclusive_and_released(tmp_path):
    folder = tmp_path / "run"
    with runs.RunLock(folder) as lock:
        holder = json.loads((folder / runs.LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert lock.took_over is None
        with pytest.raises(runs.FolderInUse, match=f"in use by another npae run .*pid {os.getpid()}") as info:
            runs.RunLock(folder).acquire()
        assert str(folder) in str(info.value) and isinstance(info.value, OSError)
    assert not (folder / runs.LOCK_NAME).exists()


def test_a_lock_held_by_a_live_process_is_refused(tmp_path):
    folder = tmp_path / "run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_lock(folder, pid=sleeper.pid, host=socket.gethostname(), started=time.time(),
                   command="npae train vae")
        with pytest.raises(runs.FolderInUse, match=f"pid {sleeper.pid} on .*npae train vae"):
            runs.RunLock(folder).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (folder / runs.LOCK_NAME).exists()  # never removed by the one refused


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    pid = dead_pid()
    write_lock(folder, pid=pid, host=socket.gethostname(), started=time.time(), command="killed")
    with runs.RunLock(folder) as lock:
        assert lock.took_over["pid"] == pid
        assert json.loads((folder / runs.LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_lock_from_another_host_is_not_guessed_about(tmp_path):
    folder = tmp_path / "run"
    write_lock(folder, pid=dead_pid(), host="some-other-host", started=time.time())
    with pytest.raises(runs.FolderInUse, match="another host"):
        runs.RunLock(folder).acquire()


def test_an_unreadable_lock_is_refused_after_a_short_wait(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / runs.LOCK_NAME).write_text("")
    with pytest.raises(runs.FolderInUse, match="unreadable lock file"):
        runs.RunLock(folder).acquire(timeout=0.05)


def test_many_takers_of_one_stale_lock_give_one_holder(tmp_path):
    folder = tmp_path / "run"
    write_lock(folder, pid=dead_pid(), host=socket.gethostname(), started=time.time())
    script = (LOAD_RUNS + "import time\n"
              "try:\n    lock = runs.RunLock(sys.argv[1]).acquire()\n"
              "    print('won', flush=True)\n    time.sleep(1)\n"
              "except runs.FolderInUse:\n    print('lost')\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE,
                              text=True, env=ENV) for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["lost"] * 3 + ["won"], outs


def test_two_cli_runs_racing_for_one_folder(tmp_path):
    """Started together: exactly one trains; the other stops at once, writes nothing and says why."""
    out = tmp_path / "shared"
    base = [sys.executable, "-m", "npae", "train"]
    common = ["--out", str(out), "--no-progress", "--epochs", "20", "--max-train", "800", "--hidden", "32"]
    procs = {m: subprocess.Popen(base + [m, *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=ENV, cwd=tmp_path) for m in ("vae", "ae")}
    done = {m: (p.wait(timeout=240), *p.communicate()) for m, p in procs.items()}
    winners = [m for m, (code, _, _) in done.items() if code == 0]
    assert len(winners) == 1, {m: (c, e) for m, (c, _, e) in done.items()}
    winner, = winners
    loser = "ae" if winner == "vae" else "vae"
    code, stdout, stderr = done[loser]
    assert code == 1 and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"output folder {str(out)!r} is in use by another npae run (pid {procs[winner].pid}" in stderr
    assert "wrote" not in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == winner
    model = npae.load(str(out / "model.npz"))
    assert type(model).__name__ == ("VAE" if winner == "vae" else "Autoencoder")
    assert npae.load(str(out / "checkpoint.npz")).config == model.config
    figures = {"loss_curves.png", "reconstructions.png", "latent_scatter.png", "manifold_grid.png"}
    assert figures | ({"samples.png"} if winner == "vae" else set()) <= set(os.listdir(out))
    assert ("samples.png" in os.listdir(out)) == (winner == "vae")  # nothing of the loser's
    assert not (out / runs.LOCK_NAME).exists()
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


# ---------------------------------------------------------------------------------------- the probe
def test_the_write_probe_never_collides(tmp_path):
    errors = []

    def probe():
        for _ in range(100):
            try:
                runs.check_writable(tmp_path)
            except OSError as exc:  # pragma: no cover (the failure this test guards against)
                errors.append(exc)

    threads = [threading.Thread(target=probe) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and os.listdir(tmp_path) == []


def test_the_write_probe_names_the_folder(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(runs.tempfile, "mkstemp", refuse)
    with pytest.raises(runs.OutputError,
                       match=f"cannot write to output folder '{tmp_path}': Permission denied"):
        runs.check_writable(tmp_path)


# ---------------------------------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "metrics.json"
    runs.write_json(path, {"a": 1})
    os.chmod(path, 0o600)
    runs.write_json(path, {"a": 2, "b": [1.5]})
    assert json.loads(path.read_text()) == {"a": 2, "b": [1.5]}
    assert os.stat(path).st_mode & 0o777 == 0o600  # the permissions of the file replaced
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_an_interrupted_atomic_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"old": true}')

    def writer(fh):
        fh.write(b'{"new": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.atomic_write(path, writer)
    assert path.read_text() == '{"old": true}' and os.listdir(tmp_path) == ["metrics.json"]


def test_disk_full_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "loss_curves.png"
    path.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(runs.os, "fsync", full)
    with pytest.raises(runs.OutputError, match=f"cannot write {path}: No space left on device") as info:
        runs.atomic_write(path, b"new bytes")
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["loss_curves.png"]


def test_naming_turns_an_anonymous_os_error_into_one_naming_the_file(tmp_path):
    with pytest.raises(runs.OutputError, match="cannot write .*model.npz: No space left on device"):
        with runs.naming(tmp_path / "model.npz"):
            raise OSError(errno.ENOSPC, "No space left on device")


def test_a_killed_save_leaves_a_temp_file_that_the_next_run_removes(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"old": true}')
    script = (LOAD_RUNS + "import time\n"
              "def slow(fh):\n    fh.write(b'{\"half\": ')\n    fh.flush()\n"
              "    print('writing', flush=True)\n    time.sleep(60)\n"
              "runs.atomic_write(sys.argv[1], slow)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True,
                             env=ENV)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and f".{child.pid}-" in left[0]  # the writer's pid and start time
    assert path.read_text() == '{"old": true}'  # a reader never saw the half-written file
    # the model saver's temp files carry no pid; one of a live process stays
    (tmp_path / ".model.npz.abc123xy.tmp").write_bytes(b"half a model")
    alive = tmp_path / f".samples.png.{os.getpid()}.qwerty12.tmp"  # a live Python process's
    alive.write_bytes(b"")
    removed = runs.clean_stale_temps(tmp_path)
    assert sorted(removed) == sorted([left[0], ".model.npz.abc123xy.tmp"])
    assert sorted(os.listdir(tmp_path)) == sorted(["metrics.json", alive.name])
