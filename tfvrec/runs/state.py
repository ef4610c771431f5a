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
``tools/chaos_train.py`` kill the trainer exactly there (``TFVREC_FAILPOINTS``, honoured only
with the second switch ``TFVREC_FAILPOINTS_ARMED=1``, which normal use never sets: a stray
``TFVREC_FAILPOINTS`` in a shell must not kill a real run).

Nothing read from the run directory is trusted as written: ``CURRENT`` must name a record
inside ``state/``, a record's counters must be consistent (`RunState.check`), and a damaged
file ends in one error naming it.
"""
import dataclasses
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from typing import List, Optional

from tfvrec import atomic, input_files
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
_ARMED = "TFVREC_FAILPOINTS_ARMED"  # the second switch: only a test or a chaos tool sets it
_warned = []


def _env_points():
    """``TFVREC_FAILPOINTS="step@2:5,commit:written@3,step@4:1!TERM"`` → [(name, epoch, step, signal)]
    (epoch and step optional; the signal SIGKILL unless ``!TERM``), when ``TFVREC_FAILPOINTS_ARMED=1``."""
    text = os.environ.get(_ENV, "")
    if not text.strip():
        return []
    if os.environ.get(_ARMED) != "1":
        if not _warned:
            _warned.append(True)
            print(f"tfvrec: ignoring {_ENV} (failpoints kill the process at chosen moments; they are armed only "
                  f"with {_ARMED}=1, for tests)", file=sys.stderr, flush=True)
        return []
    points = []
    for item in filter(None, (p.strip() for p in text.split(","))):
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
        state = cls(**{k: v for k, v in data.items() if k in names})
        state.check(source)
        return state

    def check(self, source):
        """Refuse a record whose counters cannot have been written by the trainer (edited or damaged)."""
        def fail(what):
            raise ConfigError(f"{source}: damaged run state ({what}); it was not written by tfvrec as it is. "
                              "Delete the run directory to train again")
        counters = ("sequence", "completed_epochs", "step", "steps_per_epoch", "batches_consumed", "wait",
                    "resumes")
        for name in counters:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                fail(f"'{name}' is {value!r}, not a count")
        for name in ("done", "stopped_early"):
            if not isinstance(getattr(self, name), bool):
                fail(f"'{name}' is {getattr(self, name)!r}, not true or false")
        # step = steps_per_epoch: the epoch is trained, not yet validated (a SIGTERM after its last step).
        if self.steps_per_epoch and self.step > self.steps_per_epoch:
            fail(f"step {self.step} is beyond steps_per_epoch {self.steps_per_epoch}")
        if self.steps_per_epoch and self.batches_consumed != self.completed_epochs * self.steps_per_epoch \
                + self.step and self.format == FORMAT:
            fail(f"batches_consumed {self.batches_consumed} ≠ {self.completed_epochs} epochs × "
                 f"{self.steps_per_epoch} steps + {self.step}")
        if not isinstance(self.history, list) or len(self.history) != self.completed_epochs:
            fail(f"{len(self.history) if isinstance(self.history, list) else 'no'} history entries for "
                 f"{self.completed_epochs} completed epochs")
        if self.done and self.step:
            fail(f"marked done in the middle of an epoch (step {self.step})")
        if self.best_epoch is not None and not (isinstance(self.best_epoch, int)
                                                and 1 <= self.best_epoch <= self.completed_epochs):
            fail(f"best_epoch {self.best_epoch!r} is not one of the {self.completed_epochs} completed epochs")

    def describe(self):
        if self.done:
            how = " (stopped early)" if self.stopped_early else ""
            return f"finished after {self.completed_epochs} epochs{how}"
        return (f"unfinished: {self.completed_epochs} epochs done, epoch {self.completed_epochs + 1} at step "
                f"{self.step} of {self.steps_per_epoch}")


_RECORD_NAME = re.compile(r"commit-\d{8}")  # the only names CURRENT may hold: a record inside state/


def _read_json(path):
    """A record file of the run: bounded, a regular file (`tfvrec.input_files`), damage named as such."""
    return input_files.read_json(path, "a run state record", error=lambda p, reason: ConfigError(
        f"{p}: {reason} (damaged?); delete the run directory to train again"))


class StateStore:
    """Reads and commits `RunState` records (plus a ``tf.train.Checkpoint``) under ``<model_dir>/state``."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.directory = os.path.join(model_dir, STATE_DIR)

    def current_name(self):
        path = os.path.join(self.directory, CURRENT)
        if not os.path.exists(path):
            return None
        data = _read_json(path)
        name = data.get("commit") if isinstance(data, dict) else None
        if not isinstance(name, str) or not _RECORD_NAME.fullmatch(name):
            # A path here would make the trainer read (and later delete) another directory.
            raise ConfigError(f"{path}: names {str(name)[:100]!r}, not a record of this run (commit-NNNNNNNN); "
                              "delete the run directory to start again")
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
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: missing; the run state was changed by hand")
        state = RunState.from_json(_read_json(path), path)
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
        atomic.fsync_path(self.directory)
        failpoint("commit:written", **where)
        previous = self.current_name()
        atomic.write_json(os.path.join(self.directory, CURRENT), {"commit": name})
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
        data = _read_json(view)
        if isinstance(data, dict) and "format" not in data:  # written by the Keras-callback trainer of tfvrec 0.1.0
            return RunState(completed_epochs=data.get("completed_epochs", 0), done=bool(data.get("done")),
                            best_value=data.get("best_value"), best_epoch=data.get("best_epoch"),
                            wait=data.get("wait", 0), history=data.get("history", []),
                            train_seconds=data.get("train_seconds", 0.0), format=0)
    return None


def publish_view(model_dir, state):
    """``training_state.json``: the record, for people and tools (never read back to resume)."""
    view = dict(state.to_json())
    view.pop("loss_sums", None)
    atomic.write_json(os.path.join(model_dir, VIEW_FILE), view)


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
