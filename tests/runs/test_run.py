"""The run layer: a run read where it is, "train unless finished", and nothing in a run trusted as written."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvrec import config as config_lib
from tfvrec import runs
from tfvrec.errors import ConfigError
from tfvrec.runs import state as runstate

from conftest import REPO
from planted import planted_dataset


def config(data, model_dir, *sets):
    return config_lib.load_config(None, [
        "data.source=directory", f"data.path={data}", f"runtime.model_dir={model_dir}",
        "runtime.distribution_strategy=default", "trainer.epochs=2", "trainer.batch_size=32",
        "trainer.steps_per_epoch=6", "trainer.learning_rate=0.05", "trainer.verbose=0", "model.bpr.embedding_dim=8",
        "eval.repeats=1", "eval.protocols=[full]", "eval.baselines=[]", "trainer.validation_split=train_holdout",
        *sets])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = planted_dataset(str(root / "data"))
    model_dir = str(root / "run")
    run = runs.ensure_trained(config(data, model_dir))
    return data, run


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "tfvrec", *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def test_run_reads_a_finished_run(trained):
    data, run = trained
    assert run.finished and run.exists() and run.note == ""
    assert run.params.model.name == "bpr" and run.params.runtime.model_dir == run.dir
    dataset = run.dataset()
    assert "train_holdout" in dataset.interactions  # carved once, as at training time
    assert run.dataset() is dataset
    config_, dataset_, model = run.load()
    assert model.num_items == dataset.num_items
    assert run.metrics["model"] == "bpr"


def test_ensure_trained_reuses_a_finished_run_and_names_another_run(trained):
    data, run = trained
    mtime = os.path.getmtime(os.path.join(run.dir, "params.yaml"))
    again = runs.ensure_trained(config(data, run.dir))
    assert again.dir == run.dir and os.path.getmtime(os.path.join(run.dir, "params.yaml")) == mtime
    with pytest.raises(runs.OtherRunError) as caught:
        runs.ensure_trained(config(data, run.dir, "model.bpr.embedding_dim=16"))
    assert caught.value.changed == ["model.bpr"] and "different 'model' section" in str(caught.value)
    assert os.path.exists(os.path.join(run.dir, "params.yaml"))  # never deleted


def test_baseline_run_dir_is_keyed_by_what_the_baseline_learns(trained):
    data, run = trained
    a = runs.baseline_run_dir(run.dir, config(data, "x"), "bpr")
    b = runs.baseline_run_dir(run.dir, config(data, "y"), "bpr")  # another directory, the same baseline
    c = runs.baseline_run_dir(run.dir, config(data, "x", "model.bpr.l2=0.5"), "bpr")
    assert a == b != c and a.startswith(os.path.join(run.dir, "baselines", "bpr-"))


def test_a_copied_run_is_evaluated_where_it_is(trained, tmp_path):
    """``tfvrec evaluate --run COPY`` writes into the copy; the original's results stay as they were."""
    data, run = trained
    copy = str(tmp_path / "copy")
    shutil.copytree(run.dir, copy)
    original = open(os.path.join(run.dir, "metrics.json")).read()
    os.remove(os.path.join(copy, "metrics.json"))
    result = cli("evaluate", "--run", copy, "--protocol", "sampled:10")
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.exists(os.path.join(copy, "metrics.json"))
    assert open(os.path.join(run.dir, "metrics.json")).read() == original
    moved = str(tmp_path / "moved")
    os.rename(copy, moved)  # a moved run: nothing re-created at the old path
    assert cli("evaluate", "--run", moved, "--protocol", "sampled:10").returncode == 0
    assert not os.path.exists(copy)


def test_an_alien_best_checkpoint_is_refused(trained, tmp_path):
    """A checkpoints/best that holds another model's weights: export and evaluate refuse it (exit 2, the
    file named) instead of serving untrained vectors."""
    data, run = trained
    copy = str(tmp_path / "alien")
    shutil.copytree(run.dir, copy)
    best = os.path.join(copy, "checkpoints", "best")
    prefix = tf.train.latest_checkpoint(best)
    other = tf.Module()
    other.weights_of_something_else = tf.Variable(np.ones((3, 3), np.float32))
    tf.train.Checkpoint(model=other).write(prefix)
    for verb in (["evaluate", "--run", copy], ["export", "--run", copy, "--out", str(tmp_path / "export" / "m")]):
        result = cli(*verb)
        assert result.returncode == 2, result.stderr[-2000:]
        assert prefix in result.stderr and "does not hold the weights of this model" in result.stderr
        assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "export" / "m")
    with pytest.raises(ConfigError, match="does not hold the weights"):
        runs.Run(copy).load()


def test_a_wrong_shape_or_truncated_checkpoint_is_refused(trained, tmp_path):
    data, run = trained
    copy = str(tmp_path / "shape")
    shutil.copytree(run.dir, copy)
    # The same model for a larger catalogue: every variable there, item tables of another shape.
    bigger = planted_dataset(str(tmp_path / "bigger"), num_items=120)
    params = config_lib.read_params(copy)
    params.data.path = bigger
    config_lib.write_params(params, copy)
    with pytest.raises(ConfigError, match="cannot restore this model's weights"):
        runs.Run(copy).load()
    cut = str(tmp_path / "cut")
    shutil.copytree(run.dir, cut)
    data_file = [f for f in os.listdir(os.path.join(cut, "checkpoints", "best")) if ".data-" in f][0]
    path = os.path.join(cut, "checkpoints", "best", data_file)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    result = cli("evaluate", "--run", cut)
    assert result.returncode == 2 and "checkpoints/best" in result.stderr, result.stderr[-2000:]


def test_state_records_are_not_trusted(trained, tmp_path):
    """CURRENT naming a directory outside the run, and counters out of range, are refused naming the file;
    the other directory is neither read nor deleted."""
    data, run = trained
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    escaped = str(tmp_path / "escaped")
    shutil.copytree(run.dir, escaped)
    current = os.path.join(escaped, "state", runstate.CURRENT)
    json.dump({"commit": os.path.relpath(str(victim), os.path.join(escaped, "state"))}, open(current, "w"))
    with pytest.raises(ConfigError, match="not a record of this run"):
        runstate.read_state(escaped)
    result = cli("train", "--config", os.path.join(REPO, "configs", "bpr_synthetic.yaml"), "--set",
                 f"runtime.model_dir={escaped}")
    assert result.returncode == 2 and "CURRENT" in result.stderr, result.stderr[-2000:]
    assert (victim / "keep.txt").read_text() == "precious"

    counted = str(tmp_path / "counted")
    shutil.copytree(run.dir, counted)
    store = runstate.StateStore(counted)
    record = os.path.join(store.directory, store.current_name(), runstate.STATE_JSON)
    payload = json.load(open(record))
    payload.update(done=False, step=10 ** 6)
    json.dump(payload, open(record, "w"))
    with pytest.raises(ConfigError, match=r"damaged run state \(step 1000000 is beyond steps_per_epoch 6\)"):
        runs.Run(counted).state
    payload.update(step=0, completed_epochs=1, batches_consumed=6)  # one history entry too many for it
    json.dump(payload, open(record, "w"))
    with pytest.raises(ConfigError, match="history entries for 1 completed epochs"):
        runs.Run(counted).state


def test_failpoints_need_their_second_switch(tmp_path):
    """A stray TFVREC_FAILPOINTS (without TFVREC_FAILPOINTS_ARMED=1) is ignored, with a warning."""
    data = planted_dataset(str(tmp_path / "data"))
    sets = ["data.source=directory", f"data.path={data}", f"runtime.model_dir={tmp_path / 'run'}",
            "runtime.distribution_strategy=default", "trainer.epochs=1", "trainer.steps_per_epoch=3",
            "trainer.verbose=0", "eval.protocols=[full]", "eval.repeats=1", "eval.baselines=[]"]
    config_file = tmp_path / "bpr.yaml"
    config_file.write_text("experiment: bpr\n")
    result = cli("train", "--config", str(config_file), *[a for s in sets for a in ("--set", s)],
                 env={"TFVREC_FAILPOINTS": "step@1:2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ignoring TFVREC_FAILPOINTS" in result.stderr
    assert runstate.read_state(str(tmp_path / "run")).done
