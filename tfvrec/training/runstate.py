"""The run state of a training run: one record, committed atomically; the run directory's lock.

Everything a resumed run must continue from exactly is one record, written as a whole
or not at all (``<model_dir>/state/``)::

    state/CURRENT                the name of the committed record (replaced atomically)
    state/commit-<n>/ckpt.*      model weights, optimizer slots and step counter
    state/commit-<n>/state.json  epoch, step in the epoch (= the input position), early-stopping
                                 state (best value and epoch, patience count), the history of
                                 finished epochs, the running loss sums of the current epoch

A record is written into a hidden directory, fsynced, renamed to ``commit-<n>`` and only
then named by ``CURRENT`` (written aside, fsynced, renamed over the old one): a kill at
any moment leaves either the previous record or the new one, never a mixture. Records
other than the current one are removed after the switch (and at the next start, when a
kill came in between).

What is *derived* from the record — ``checkpoints/ckpt-N`` (weights after epoch N),
``checkpoints/best/`` and the human-readable ``training_state.json`` — is published after
the commit and published again, idempotently, when a run starts from a record whose
publication a kill interrupted. So each epoch is trained, validated, recorded in the
history and checkpointed exactly once, whatever the kill timing.

The input position is the number of batches consumed: a model's training data set is an
infinite stream that is a pure function of the seed (the model contract), so a resumed
run skips exactly that many batches and sees the batches an uninterrupted run would.

One trainer per run directory: `RunLock` holds an exclusive ``flock`` on
``<model_dir>/train.lock``, which the operating system releases when the process dies,
so a killed run never leaves a stale lock.

Failpoints (`failpoint`) mark the moments between the steps above; tests and
``tools/chaos_train.py`` kill the trainer exactly there (``TFVREC_FAILPOINTS``).
"""
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import tempfile
from typing import List, Optional

from tfvrec.errors import ConfigError

STATE_DIR = "state"
CURRENT = "CURRENT"
STATE_JSON = "state.json"
LOCK_FILE = "train.lock"
VIEW_FILE = "training_state.json"  # the published, human-readable copy of the record
FORMAT = 1

# The exit code after a SIGTERM was answered by saving the run at a step boundary:
# 143 (128 + SIGTERM), the "restartable" code of tf.distribute's PreemptionCheckpointHandler
# on GCE; the same command resumes the run.
PREEMPTED_EXIT_CODE = 143


class RunDirectoryBusy(ConfigError):
    """Another trainer holds the run directory."""


class Preempted(Exception):
    """SIGTERM was answered: the run is saved at a step boundary; the same command resumes it."""

    exit_code = PREEMPTED_EXIT_CODE


# ----------------------------------------------------------------------------- failpoints

class SimulatedKill(BaseException):
    """Raised by a test's failpoint hook: leaves the disk exactly as a SIGKILL at that point would
    (the trainer writes nothing on the way out: no ``except``/``finally`` of it persists state)."""


HOOKS = []  # callables hook(name, **where): tests register them
_ENV = "TFVREC_FAILPOINTS"


def _env_points():
    """``TFVREC_FAILPOINTS="step@2:5,commit:written@3,step@4:1!TERM"`` → [(name, epoch, step, signal)]
    (epoch and step optional; the signal SIGKILL unless ``!TERM``)."""
    points = []
    for item in filter(None, (p.strip() for p in os.environ.get(_ENV, "").split(","))):
        item, _, action = item.partition("!")
        name, _, where = item.partition("@")
        epoch, _, step = where.partition(":")
        sig = signal.SIGTERM if action.upper() == "TERM" else signal.SIGKILL
        points.append((name, int(epoch) if epoch else None, int(step) if step else None, sig))
    return points


def failpoint(name, epoch=None, step=None, **where):
    """A moment a kill may come at. ``epoch`` is 1-based; ``step`` the steps done in the epoch."""
    for hook in list(HOOKS):
        hook(name, epoch=epoch, step=step, **where)
    for point, at_epoch, at_step, sig in _env_points():
        if point == name and at_epoch in (None, epoch) and at_step in (None, step):
            os.kill(os.getpid(), sig)


# ----------------------------------------------------------------------------- the record

@dataclasses.dataclass
class RunState:
    """The committed state of a run (``state.json`` of the current record)."""

    format: int = FORMAT
    sequence: int = 0  # commit number
    completed_epochs: int = 0  # epochs trained, validated and recorded
    step: int = 0  # steps done in epoch completed_epochs + 1
    steps_per_epoch: int = 0
    batches_consumed: int = 0  # the input position (batches taken from the training stream)
    done: bool = False
    stopped_early: bool = False
    best_value: Optional[float] = None
    best_epoch: Optional[int] = None
    wait: int = 0
    history: List[dict] = dataclasses.field(default_factory=list)
    train_seconds: float = 0.0  # finished epochs, validation included
    epoch_seconds: float = 0.0  # time spent so far in the current (unfinished) epoch
    loss_sums: dict = dataclasses.field(default_factory=dict)  # running sums of the epoch's step metrics
    checkpoints: List[int] = dataclasses.field(default_factory=list)  # epochs with a ckpt-N published
    resumes: int = 0  # times this run was started again from a record

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data, source):
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{source}: not a tfvrec run state (format {FORMAT})")
        return cls(**{k: v for k, v in data.items() if k in names})

    def describe(self):
        if self.done:
            how = " (stopped early)" if self.stopped_early else ""
            return f"finished after {self.completed_epochs} epochs{how}"
        return (f"unfinished: {self.completed_epochs} epochs done, epoch {self.completed_epochs + 1} at step "
                f"{self.step} of {self.steps_per_epoch}")


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomically(path, payload):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_path(directory)


class StateStore:
    """Reads and commits `RunState` records (plus a ``tf.train.Checkpoint``) under ``<model_dir>/state``."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.directory = os.path.join(model_dir, STATE_DIR)

    def current_name(self):
        path = os.path.join(self.directory, CURRENT)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            try:
                name = json.load(f)["commit"]
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{path}: unreadable (not written by tfvrec?); delete the run directory "
                                  "to start again") from None
        if not os.path.isdir(os.path.join(self.directory, name)):
            raise ConfigError(f"{path}: names {name}, which is missing; the run state was changed by hand")
        return name

    def exists(self):
        return self.current_name() is not None

    def load(self):
        """The committed `RunState` (or None) and the prefix of its checkpoint."""
        name = self.current_name()
        if name is None:
            return None, None
        path = os.path.join(self.directory, name, STATE_JSON)
        with open(path) as f:
            state = RunState.from_json(json.load(f), path)
        return state, os.path.join(self.directory, name, "ckpt")

    def clean(self):
        """Remove everything in ``state/`` but the current record (left by a kill). Needs the lock."""
        if not os.path.isdir(self.directory):
            return
        keep = self.current_name()
        for entry in os.listdir(self.directory):
            if entry not in (keep, CURRENT):
                path = os.path.join(self.directory, entry)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def commit(self, state, checkpoint, where=None):
        """Write ``state`` and ``checkpoint`` (a ``tf.train.Checkpoint``) as the new current record."""
        where = where or {}
        os.makedirs(self.directory, exist_ok=True)
        state.sequence += 1
        name = f"commit-{state.sequence:08d}"
        tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.directory)
        checkpoint.write(os.path.join(tmp, "ckpt"))
        failpoint("commit:checkpoint_written", **where)
        with open(os.path.join(tmp, STATE_JSON), "w") as f:
            json.dump(state.to_json(), f, indent=1)
        for entry in os.listdir(tmp):
            with open(os.path.join(tmp, entry), "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o755)
        final = os.path.join(self.directory, name)
        if os.path.exists(final):  # a record of this number that was never named CURRENT (a kill)
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_path(self.directory)
        failpoint("commit:written", **where)
        previous = self.current_name()
        _write_json_atomically(os.path.join(self.directory, CURRENT), {"commit": name})
        failpoint("commit:switched", **where)
        if previous and previous != name:
            shutil.rmtree(os.path.join(self.directory, previous), ignore_errors=True)
        return final


def read_state(model_dir):
    """The committed `RunState` of a run directory; a legacy ``training_state.json`` (runs of
    tfvrec ≤ 0.1.0) is read into one; None when the directory holds no run."""
    state, _ = StateStore(model_dir).load()
    if state is not None:
        return state
    view = os.path.join(model_dir, VIEW_FILE)
    if os.path.exists(view):
        try:
            with open(view) as f:
                data = json.load(f)
        except ValueError:
            raise ConfigError(f"{view}: not valid JSON") from None
        if "format" not in data:  # written by the Keras-callback trainer of tfvrec 0.1.0
            return RunState(completed_epochs=data.get("completed_epochs", 0), done=bool(data.get("done")),
                            best_value=data.get("best_value"), best_epoch=data.get("best_epoch"),
                            wait=data.get("wait", 0), history=data.get("history", []),
                            train_seconds=data.get("train_seconds", 0.0), format=0)
    return None


def publish_view(model_dir, state):
    """``training_state.json``: the record, for people and tools (never read back to resume)."""
    view = dict(state.to_json())
    view.pop("loss_sums", None)
    _write_json_atomically(os.path.join(model_dir, VIEW_FILE), view)


# ----------------------------------------------------------------------------- the lock

class RunLock:
    """An exclusive ``flock`` on ``<model_dir>/train.lock`` for as long as the trainer runs."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.path = os.path.join(model_dir, LOCK_FILE)
        self._fd = None

    def acquire(self):
        os.makedirs(self.model_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunDirectoryBusy(
                    f"{self.model_dir}: this run directory is in use by another trainer ({holder}); wait for it "
                    "to finish or stop it, or train into another runtime.model_dir") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def is_locked(model_dir):
    """Whether a live trainer holds ``model_dir`` (False when there is no lock file)."""
    path = os.path.join(model_dir, LOCK_FILE)
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
