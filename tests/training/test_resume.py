"""Exact resume (issue 16): a run killed at any moment ends like an uninterrupted one.

Kills come at failpoints (`tfvrec.runs.state.failpoint`), not after sleeps: in this
process a hook raises `SimulatedKill` (the trainer persists nothing on the way out, so the
disk is left as a SIGKILL there would leave it); in a child process ``TFVREC_FAILPOINTS``
sends the real SIGKILL or SIGTERM. Every resumed run must end with one history entry and
one checkpoint per epoch, and the same weights (every epoch's checkpoint, and the final
optimizer state) as the uninterrupted run.
"""
import fcntl
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvrec import config as config_lib
from tfvrec.evaluation import engine as evaluation
from tfvrec.runs import Run
from tfvrec.runs import state as runstate
from tfvrec.training import trainer

from conftest import REPO
from planted import planted_dataset

EPOCHS, STEPS, EVERY = 4, 12, 4  # steps per epoch a multiple of the record interval (the first window)


def config(data, model_dir, *sets):
    return config_lib.load_config(None, [
        "data.source=directory", f"data.path={data}", f"runtime.model_dir={model_dir}",
        "runtime.distribution_strategy=default", f"trainer.epochs={EPOCHS}", "trainer.batch_size=32",
        f"trainer.steps_per_epoch={STEPS}", f"trainer.checkpoint_every_steps={EVERY}", "trainer.learning_rate=0.05",
        "trainer.learning_rate_decay=0.9", "trainer.early_stopping_patience=3", "trainer.keep_checkpoints=0",
        "trainer.verbose=0", "model.bpr.embedding_dim=8", "eval.repeats=1", "eval.protocols=[full]",
        "eval.baselines=[]", *sets])


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_dataset(str(tmp_path_factory.mktemp("data")))


def run(cfg, kill=None, events=None):
    """Train; ``kill=(name, epoch, step)``: die there. Returns True if the run finished."""
    def hook(name, epoch=None, step=None, **_):
        if events is not None:
            events.append((name, epoch, step))
        if kill is not None and (name, epoch, step) == tuple(kill):
            raise runstate.SimulatedKill(kill)

    runstate.HOOKS.append(hook)
    try:
        trainer.train(cfg)
        return True
    except runstate.SimulatedKill:
        return False
    finally:
        runstate.HOOKS.remove(hook)


def checkpoint_tensors(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def outcome(model_dir):
    """What must not depend on kills: the history (less wall times), each epoch's weights, the final record."""
    state = json.load(open(os.path.join(model_dir, "training_state.json")))
    history = [{k: v for k, v in entry.items() if k != "epoch_seconds"} for entry in state["history"]]
    directory = os.path.join(model_dir, "checkpoints")
    listed = [os.path.basename(p) for p in tf.train.get_checkpoint_state(directory).all_model_checkpoint_paths]
    weights = {name: checkpoint_tensors(os.path.join(directory, name)) for name in listed}
    _, prefix = runstate.StateStore(model_dir).load()
    return {"history": history, "listed": listed, "weights": weights, "final": checkpoint_tensors(prefix),
            "best": (state["best_epoch"], state["best_value"], state["wait"]), "done": state["done"],
            "epochs": state["completed_epochs"]}


def assert_same(got, expected):
    assert got["done"] and got["epochs"] == EPOCHS
    assert got["listed"] == [f"ckpt-{n}" for n in range(1, EPOCHS + 1)]  # one checkpoint per epoch, once
    assert len(got["history"]) == EPOCHS  # one history entry per epoch
    assert got["history"] == expected["history"] and got["best"] == expected["best"]
    for name in expected["weights"]:
        for key, value in expected["weights"][name].items():
            np.testing.assert_array_equal(got["weights"][name][key], value, err_msg=f"{name} {key}")
    for key, value in expected["final"].items():  # weights, optimizer slots and step counter
        if "save_counter" not in key:
            np.testing.assert_array_equal(got["final"][key], value, err_msg=key)


@pytest.fixture(scope="module")
def reference(planted, tmp_path_factory):
    """The uninterrupted run, and the sequence of failpoints it passes."""
    model_dir = str(tmp_path_factory.mktemp("reference"))
    events = []
    assert run(config(planted, model_dir), events=events)
    return outcome(model_dir), events


# The three windows, and the moments of a commit and of the publication around them.
WINDOWS = [
    ("epoch:trained", 2, STEPS),  # after the last batch, before the epoch's bookkeeping
    ("epoch:validated", 2, STEPS),  # validated, not recorded
    ("commit:checkpoint_written", 2, 0),  # the epoch's record half written
    ("commit:written", 2, 0),  # the record written, not yet current
    ("commit:switched", 2, 0),  # recorded, ckpt-2 not yet published
    ("publish:checkpoint", 2, 0),  # ckpt-2 published, best/ not yet
    ("publish:done", 2, 0),  # after the bookkeeping, before the next record
    ("step", 3, 1),  # before the first mid-epoch record of epoch 3
    ("commit:written", 3, EVERY),  # a mid-epoch record written, not yet current
    ("step", 4, STEPS),  # the last step of the run
]


@pytest.mark.parametrize("kill", WINDOWS, ids=[f"{n}@{e}:{s}" for n, e, s in WINDOWS])
def test_kill_window_resumes_exactly(planted, reference, tmp_path, kill, capsys):
    expected, events = reference
    assert tuple(kill) in events, "the window is a moment the run passes through"
    cfg = config(planted, str(tmp_path / "run"))
    assert not run(cfg, kill=kill)
    capsys.readouterr()
    assert run(cfg)
    printed = capsys.readouterr().out
    state = outcome(str(tmp_path / "run"))
    assert_same(state, expected)
    assert "resuming" in printed and "from epoch" in printed and ", step " in printed


def test_twenty_random_kills_in_one_run(planted, reference, tmp_path):
    """20 kills at random failpoints (fixed seed) of one run, each followed by a restart."""
    expected, events = reference
    points = sorted(random.Random(16).sample(range(len(events)), 20))
    cfg = config(planted, str(tmp_path / "run"))
    kills = 0
    for index in points:
        if not run(cfg, kill=events[index]):
            kills += 1
    assert run(cfg)
    assert kills >= 15  # (a point whose moment a restart does not pass again is skipped)
    assert_same(outcome(str(tmp_path / "run")), expected)


def test_resumed_finished_run_only_evaluates_and_keeps_params(planted, reference, tmp_path):
    cfg = config(planted, str(tmp_path / "run"))
    assert run(cfg)
    params = tmp_path / "run" / "params.yaml"
    stamp = params.stat().st_mtime_ns
    os.utime(params, ns=(stamp - 10 ** 9, stamp - 10 ** 9))
    events = []
    assert run(config(planted, str(tmp_path / "run"), "eval.repeats=2"), events=events)
    assert not [e for e in events if e[0] == "step"]
    assert params.stat().st_mtime_ns == stamp - 10 ** 9  # re-evaluated, not rewritten


def test_failed_first_start_leaves_no_params_that_refuse_the_fix(planted, tmp_path):
    model_dir = str(tmp_path / "run")
    with pytest.raises(Exception, match="data set directory not found"):
        trainer.train(config(str(tmp_path / "nope"), model_dir))
    assert not os.path.exists(os.path.join(model_dir, "params.yaml"))
    # A start that fails after params.yaml (no run state yet) does not bind the directory either.
    cfg = config(planted, model_dir, "model.bpr.embedding_dim=4")
    config_lib.write_params(cfg, model_dir)
    assert run(config(planted, model_dir, "trainer.epochs=1"))
    with pytest.raises(config_lib.ConfigError, match="different 'model' section"):
        trainer.train(config(planted, model_dir, "model.bpr.embedding_dim=4"))
    with pytest.raises(config_lib.ConfigError, match="trainer.batch_size=32"):
        trainer.train(config(planted, model_dir, "trainer.batch_size=16"))


def test_second_trainer_is_refused_while_the_first_holds_the_directory(planted, tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(model_dir / runstate.LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid %d' % os.getpid())\n"
        "print('locked', flush=True); sys.stdin.read()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(runstate.RunDirectoryBusy, match=f"in use by another trainer \\(pid {holder.pid}\\)"):
            trainer.train(config(planted, str(model_dir)))
        assert runstate.is_locked(str(model_dir))
        result = subprocess.run([sys.executable, "-m", "tfvrec", "train", "--config",
                                 os.path.join(REPO, "configs", "bpr_synthetic.yaml"), "--set",
                                 f"runtime.model_dir={model_dir}"], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "in use by another trainer" in result.stderr
    finally:
        holder.stdin.close()
        holder.wait()
    assert not runstate.is_locked(str(model_dir))  # the lock died with its process


def test_unfinished_run_needs_allow_unfinished(planted, tmp_path):
    model_dir = str(tmp_path / "run")
    assert not run(config(planted, model_dir), kill=("publish:done", 2, 0))
    with pytest.raises(config_lib.ConfigError, match="unfinished: 2 epochs done.*--allow-unfinished"):
        Run(model_dir).load(allow_unfinished=False)
    cfg, dataset, model = Run(model_dir).load(allow_unfinished=True)
    rows = evaluation.evaluate_run(cfg, dataset, model, note=Run(model_dir).note)
    assert rows
    title = json.load(open(os.path.join(model_dir, "metrics.json")))["title"]
    assert "UNFINISHED run (unfinished: 2 epochs done" in title


def child_command(data, model_dir, config_file):
    sets = ["data.source=directory", f"data.path={data}", f"runtime.model_dir={model_dir}",
            "runtime.distribution_strategy=default", f"trainer.epochs={EPOCHS}", "trainer.batch_size=32",
            f"trainer.steps_per_epoch={STEPS}", f"trainer.checkpoint_every_steps={EVERY}",
            "trainer.learning_rate=0.05", "trainer.learning_rate_decay=0.9", "trainer.early_stopping_patience=3",
            "trainer.keep_checkpoints=0", "trainer.verbose=0", "model.bpr.embedding_dim=8", "eval.repeats=1",
            "eval.protocols=[full]", "eval.baselines=[]"]
    return [sys.executable, "-m", "tfvrec", "train", "--config", str(config_file),
            *[arg for s in sets for arg in ("--set", s)]]


def test_real_sigkill_and_sigterm_in_child_processes(planted, reference, tmp_path):
    """SIGKILL mid-epoch (a real kill -9 at a failpoint), then SIGTERM at a step boundary: the run is
    saved, the process exits 143 with a message, and the same command resumes it exactly."""
    expected, _ = reference
    model_dir = str(tmp_path / "run")
    config_file = tmp_path / "bpr.yaml"
    config_file.write_text("experiment: bpr\n")  # the defaults, as `config()` above
    command = child_command(planted, model_dir, config_file)
    killed = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, TFVREC_FAILPOINTS="step@2:6", TFVREC_FAILPOINTS_ARMED="1"))
    assert killed.returncode == -9, killed.stderr[-2000:]
    termed = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, TFVREC_FAILPOINTS="step@3:7!TERM",
                                                     TFVREC_FAILPOINTS_ARMED="1"))
    assert termed.returncode == runstate.PREEMPTED_EXIT_CODE == 143, termed.stderr[-2000:]
    assert "resuming" in termed.stdout and "from epoch 2, step 4" in termed.stdout
    assert "SIGTERM: saved" in termed.stderr and "epoch 3, step 7" in termed.stderr
    assert "Traceback" not in termed.stderr
    state = runstate.read_state(model_dir)
    assert (state.completed_epochs, state.step) == (2, 7)
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "from epoch 3, step 7" in finished.stdout
    assert_same(outcome(model_dir), expected)


def test_lock_file_is_not_a_stale_lock_after_a_kill(tmp_path):
    lock = runstate.RunLock(str(tmp_path))
    lock.acquire()
    with pytest.raises(runstate.RunDirectoryBusy):
        runstate.RunLock(str(tmp_path)).acquire()
    os.close(lock._fd)  # what the OS does to a killed process's descriptors
    lock._fd = None
    fd = os.open(str(tmp_path / runstate.LOCK_FILE), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    os.close(fd)
