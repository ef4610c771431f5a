"""The training engine on BPR-MF: learning, distribution, checkpoints, resume, CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvrec.inputs import bootstrap_pairs
from tfvrec.runs import Run
from tfvrec import config as config_lib
from tfvrec.data.dataset import load_dataset
from tfvrec.models.bpr.model import BPRMF
from tfvrec.training import trainer

from conftest import REPO
from planted import planted_dataset


def tiny_config(data_path, model_dir, *sets):
    return config_lib.load_config(None, [
        "data.source=directory", f"data.path={data_path}", f"runtime.model_dir={model_dir}",
        "runtime.distribution_strategy=default", "trainer.epochs=6", "trainer.batch_size=64",
        "trainer.learning_rate=0.05", "model.bpr.embedding_dim=8", "trainer.verbose=0", "eval.repeats=2",
        "eval.protocols=[full]", *sets])


IN_MEMORY = {}  # model name -> the model trained_run trained


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_dataset(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def trained_run(planted, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("run"))
    rows, model = trainer.train(tiny_config(planted, model_dir), return_model=True)
    IN_MEMORY["bpr"] = model  # the trained in-memory model, for the save → restore check
    return model_dir, dict((name, result) for name, result in rows)


def test_training_writes_the_run_directory(trained_run):
    model_dir, _ = trained_run
    assert os.path.exists(os.path.join(model_dir, "params.yaml"))
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")) is not None
    events = [f for _, _, files in os.walk(os.path.join(model_dir, "tensorboard")) for f in files
              if f.startswith("events.out.tfevents")]
    assert len(events) >= 2  # train and validation writers
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    assert metrics["results"][0]["protocol"] == "full" and "hr@5" in metrics["results"][0]["metrics"]


def test_loss_decreases_and_bpr_beats_popularity_on_planted_clusters(trained_run):
    model_dir, results = trained_run
    history = json.load(open(os.path.join(model_dir, "training_state.json")))["history"]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]  # the default retrieval softmax: its floor is above 0
    assert results["bpr"].metrics["hr@10"] > results["popularity"].metrics["hr@10"] + 0.2
    assert results["bpr"].metrics["auc"] > 0.8 > results["random"].metrics["auc"] + 0.2


def test_restored_run_scores_like_the_trained_model(trained_run, planted):
    """tfrs' save/restore check: the run restored from disk scores exactly like the model the
    engine trained and evaluated in memory."""
    model_dir, _ = trained_run
    config, dataset, model = Run(model_dir).load()
    users = np.arange(dataset.num_users)
    np.testing.assert_array_equal(model.score_all(users), IN_MEMORY["bpr"].score_all(users))
    items = np.tile(np.arange(5), (len(users), 1))
    np.testing.assert_allclose(model.score(users, items), model.score_all(users)[:, :5], rtol=1e-5, atol=1e-6)


@pytest.mark.fresh_process
def test_mirrored_two_replicas_match_one_device(planted):
    """Loss and regularization scaling under MirroredStrategy: the same update as one device."""
    dataset = load_dataset(planted)
    rng = np.random.default_rng(0)
    batch = {"user": rng.integers(0, dataset.num_users, 32), "positive": rng.integers(0, dataset.num_items, 32),
             "negatives": rng.integers(0, dataset.num_items, (32, 3))}
    weights = {}
    for name, strategy in (("one", tf.distribute.get_strategy()),
                           ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        assert name == "one" or strategy.num_replicas_in_sync == 2
        tf.keras.utils.set_random_seed(1)
        with strategy.scope():
            model = BPRMF(dataset.num_users, dataset.num_items, embedding_dim=4, l2=0.1)
            model.compile(optimizer=tf.keras.optimizers.SGD(1.0))
        ds = tf.data.Dataset.from_tensors({k: tf.constant(v, tf.int64) for k, v in batch.items()})
        model.fit(ds, epochs=1, verbose=0)
        weights[name] = [w.numpy() for w in model.user_model.weights + model.item_model.weights]
    for a, b in zip(weights["one"], weights["mirrored"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def run_cli(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "tfvrec", *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), **kwargs)


def test_learning_rate_decays_per_epoch(planted, tmp_path):
    """trainer.learning_rate_decay = 0.5: epochs 1, 2, 3 train at 0.05, 0.025, 0.0125; > 1 is refused."""
    model_dir = str(tmp_path / "run")
    trainer.train(tiny_config(planted, model_dir, "trainer.epochs=3", "trainer.learning_rate_decay=0.5",
                              "eval.baselines=[]"))
    history = json.load(open(os.path.join(model_dir, "training_state.json")))["history"]
    np.testing.assert_allclose([epoch["lr"] for epoch in history], [0.05, 0.025, 0.0125], rtol=1e-6)
    with pytest.raises(config_lib.ConfigError, match="trainer.learning_rate_decay' must be in \\(0, 1\\], got 1.5"):
        tiny_config(planted, model_dir, "trainer.learning_rate_decay=1.5")


def test_cli_reports_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: bpr\ntrainer:\n  learning_rat: 0.1\n")
    result = run_cli("train", "--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}: unknown key 'trainer.learning_rat'. Did you mean 'trainer.learning_rate'?" in result.stderr


def test_cli_reports_bad_data_in_one_line(tmp_path, planted):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(planted, data)
    with open(data / "interactions" / "train.tsv", "a") as f:
        f.write("u1\tnot_an_item\t9\n")
    result = run_cli("data", "validate", str(data))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.tsv, line" in result.stderr and "item 'not_an_item' is not in items.tsv" in result.stderr


def test_cli_evaluate_on_explicit_heldout_file(trained_run, planted, tmp_path):
    model_dir, _ = trained_run
    dataset = load_dataset(planted)
    test = dataset.split("test")
    heldout = tmp_path / "heldout.tsv"
    heldout.write_text("".join(f"{dataset.user_ids[u]}\t{dataset.item_ids[i]}\n"
                               for u, i in zip(test["user"], test["item"])))
    result = run_cli("evaluate", "--run", model_dir, "--test", str(heldout), "--protocol", "sampled:20",
                     "--repeats", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sampled:20" in result.stdout and "heldout.tsv" in result.stdout
    metrics = json.load(open(os.path.join(model_dir, "metrics-heldout.json")))
    assert metrics["results"][0]["protocol"] == "sampled:20" and metrics["results"][0]["repeats"] == 3
    assert metrics["results"][0]["metrics"]["hr@5"] > metrics["results"][2]["metrics"]["hr@5"]  # bpr > random


def test_embedded_default_trains_on_a_cached_synthetic_world(tmp_path):
    """The demo path: data.source=synthetic generates the world once, then reuses it."""
    from tfvrec.data.resolve import dataset_path
    config = config_lib.load_config(os.path.join(REPO, "configs", "bpr_synthetic.yaml"), [
        f"data.cache_dir={tmp_path / 'cache'}", f"runtime.model_dir={tmp_path / 'run'}",
        "data.synthetic.num_users=150", "data.synthetic.num_items=300", "data.synthetic.num_creators=30",
        "trainer.epochs=2", "trainer.verbose=0", "eval.repeats=2", "runtime.distribution_strategy=default"])
    rows = dict(trainer.train(config))
    path = dataset_path(config.data)
    assert os.listdir(tmp_path / "cache") == [os.path.basename(path)]
    stamp = os.path.getmtime(os.path.join(path, "users.tsv"))
    assert dataset_path(config.data) == path and os.path.getmtime(os.path.join(path, "users.tsv")) == stamp
    assert set(rows) == {"bpr", "popularity", "random"}
    assert {r["protocol"] for r in json.load(open(tmp_path / "run" / "metrics.json"))["results"]} == \
        {"sampled:100", "full"}


def test_mixed_precision_trains_with_float32_loss(planted):
    """runtime.mixed_precision: float16 compute, float32 variables and loss, loss scaling."""
    dataset = load_dataset(planted)
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = BPRMF(dataset.num_users, dataset.num_items, embedding_dim=8, l2=1e-4)
        model.compile(optimizer=trainer.make_optimizer(config_lib.TrainerConfig(learning_rate=0.05)))
        ds, _ = bootstrap_pairs(dataset, config_lib.TrainerConfig(batch_size=32), seed=0)
        history = model.fit(ds, steps_per_epoch=20, epochs=3, verbose=0).history
        assert model.user_model.weights[0].dtype == tf.float32
        assert model(({"user": tf.constant([0], tf.int64), "items": tf.constant([[1]], tf.int64)})).dtype == tf.float16
        assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_mirrored_two_local_workers(planted, tmp_path):
    """TF_CONFIG with two workers on 127.0.0.1 → MultiWorkerMirroredStrategy; the chief owns the run dir."""
    ports = [_free_port(), _free_port()]
    model_dir = tmp_path / "run"
    command = [sys.executable, "-m", "tfvrec", "train", "--config", os.path.join(REPO, "configs", "bpr_synthetic.yaml"),
               "--set", "data.source=directory", "--set", f"data.path={planted}",
               "--set", f"runtime.model_dir={model_dir}", "--set", "trainer.epochs=2",
               "--set", "trainer.steps_per_epoch=10", "--set", "trainer.batch_size=32", "--set", "trainer.verbose=0",
               "--set", "eval.protocols=[full]", "--set", "eval.baselines=[]"]
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(command, cwd=REPO, env=dict(os.environ, TF_CONFIG=tf_config),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    strategy_lines = [l for l in outputs[0][1].splitlines() if "Distribution strategy" in l]
    expected = "multi_worker_mirrored (CollectiveAllReduceStrategy) with 2 replica(s)"
    assert strategy_lines and expected in strategy_lines[0], strategy_lines
    state = json.load(open(model_dir / "training_state.json"))
    assert state["done"] and state["completed_epochs"] == 2
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")) is not None
    assert "| bpr" in outputs[0][0] and "| bpr" not in outputs[1][0]  # only the chief evaluates
