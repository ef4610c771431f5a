"""CuratorNet's D_S as TFRecords (``tfvrec triplets``): the Beam pipeline (DirectRunner) and the
in-process writer write the in-process stream's triplets in its order; the trainer streams
them as the same batches (a run from records equals a run sampling in process); records made
for another config are refused by name."""
import os

import numpy as np
import pytest

from tfvrec import cli
from tfvrec.data.errors import DataError
from tfvrec.models.curatornet import model as curatornet_model
from tfvrec.models.curatornet import triplet_records
from tfvrec.models.curatornet.model import build_sampler, triplet_dataset
from tfvrec.models.curatornet.triplet_source import plan
from tfvrec.triplets import generate, shards
from tfvrec.triplets.manifest import manifest_path
from tfvrec.triplets.sources import training_dataset
from tfvrec.runs import state as runstate
from tfvrec.training import trainer

from test_curatornet import art_store_world, world_config

pytest.importorskip("apache_beam",
                    reason="Apache Beam not installed (pip install 'tfvrec[beam]'; make test installs it)")

SMALL = ["model.curatornet.num_clusters=5", "model.curatornet.cluster_restarts=1", "model.curatornet.num_triplets=3000",
         "model.curatornet.sampler_chunk=512", "trainer.batch_size=128"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return art_store_world(str(tmp_path_factory.mktemp("data")), num_users=200, num_artists=20, num_clusters=5)


def config_of(world, tmp_path, *sets):
    return world_config(world, str(tmp_path / "run"), *SMALL, *sets)


def in_process(config):
    """D_S as the trainer's sampler streams it: rows (profile, i, j, user, guideline) in order."""
    sampler = build_sampler(training_dataset(config), config)
    c = config.model.curatornet
    rows = []
    for t in sampler.stream(config.runtime.seed, c.num_triplets, chunk=c.sampler_chunk):
        batch = sampler.materialize(t)
        for row, i, j, u, g in zip(batch["profile"], t.positive, t.negative, t.user, t.guideline):
            rows.append((tuple(int(x) for x in row if x >= 0), int(i), int(j), int(u), int(g)))
    return rows


def records(out, manifest):
    columns = shards.read_rows([os.path.join(out, s["file"]) for s in manifest["shards"]], triplet_records.SCHEMA)
    return [(tuple(int(x) for x in p), int(i), int(j), int(u), int(g)) for p, i, j, u, g in
            zip(columns["profile"], columns["positive"], columns["negative"], columns["user"], columns["guideline"])]


def test_beam_and_local_records_are_the_in_process_triplets_in_order(world, tmp_path):
    config = config_of(world, tmp_path)
    expected = in_process(config)
    assert len(expected) == 3000 and len(set(expected)) == 3000
    by_beam = generate.write_triplets(config, str(tmp_path / "beam"), runner="beam", num_shards=3)
    by_local = generate.write_triplets(config, str(tmp_path / "local"), runner="local", num_shards=3)
    assert records(str(tmp_path / "beam"), by_beam) == expected
    assert records(str(tmp_path / "local"), by_local) == expected
    assert [s["triplets"] for s in by_beam["shards"]] == [1000, 1000, 1000] == [s["triplets"] for s in
                                                                                by_local["shards"]]
    assert by_beam["config_digest"] == by_local["config_digest"] and by_beam["counts"] == by_local["counts"]
    assert sum(n for k, n in by_beam["counts"].items() if k.startswith("guideline ")) == 3000
    assert by_beam["guidelines"] == ["D1", "D2", "D3", "D4", "D5", "D6"]


def test_a_stream_that_runs_dry_is_cut_where_the_in_process_one_stops(tmp_path):
    # 20 items: D5 and D6 hold a few hundred distinct triplets, far fewer than asked for, so
    # the Beam plan must draw more chunks than it first did until it sees the stream stop.
    small = art_store_world(str(tmp_path / "data"), num_users=30, num_artists=4, items_per_artist=5, num_clusters=3)
    config = world_config(small, str(tmp_path / "run"), "model.curatornet.num_clusters=3",
                          "model.curatornet.cluster_restarts=1", "model.curatornet.guidelines=[D5,D6]",
                          "model.curatornet.num_triplets=5000", "model.curatornet.sampler_chunk=256",
                          "model.curatornet.cluster_dims=8")
    expected = in_process(config)
    assert 0 < len(expected) < 5000
    manifest = generate.write_triplets(config, str(tmp_path / "beam"), runner="beam", num_shards=2)
    assert records(str(tmp_path / "beam"), manifest) == expected
    assert manifest["counts"]["triplets"] == len(expected) and manifest["beam"]["units_drawn"] > 20


def test_plan_follows_the_streams_stopping_rule():
    # 3 triplets asked: chunk 0 gives 2 new, chunk 1 none, chunk 2 the last one (of its 5).
    assert plan({0: 2, 2: 5}, 3, num_triplets=3, chunk=100) == {0: (0, 2), 2: (2, 1)}
    assert plan({0: 2}, 3, num_triplets=3, chunk=100) is None  # not done within the chunks drawn
    # 20 chunks in a row adding under chunk // 100 new triplets end the stream.
    assert plan({0: 5}, 21, num_triplets=10 ** 6, chunk=1000) == {0: (0, 5)}


def _batches(ds, n):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def test_the_trainer_streams_the_records_as_the_in_process_batches(world, tmp_path):
    config = config_of(world, tmp_path)
    generate.write_triplets(config, str(tmp_path / "records"), runner="local", num_shards=2)
    dataset = training_dataset(config)
    c = config.model.curatornet
    # 3000 triplets in batches of 128: batch 23 runs across the pass boundary into the second pass.
    expected = _batches(triplet_dataset(build_sampler(dataset, config), c, 128, config.runtime.seed), 30)
    config.model.curatornet.triplets_path = str(tmp_path / "records")
    got = _batches(triplet_records.record_dataset(config, dataset, 128), 30)
    for a, b in zip(expected, got):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_run_trained_from_records_and_resumed_equals_a_run_sampling_in_process(world, tmp_path, monkeypatch):
    sets = ["trainer.steps_per_epoch=8", "trainer.epochs=2", "trainer.checkpoint_every_steps=4"]
    config = config_of(world, tmp_path, *sets)
    generate.write_triplets(config, str(tmp_path / "records"), runner="beam", num_shards=2)
    _, sampled = trainer.train(config, return_model=True)
    streamed_config = world_config(world, str(tmp_path / "run_records"), *SMALL, *sets,
                                   f"model.curatornet.triplets_path={tmp_path / 'records'}")

    def no_sampler(*args, **kwargs):
        raise AssertionError("the run from records built the in-process sampler")
    monkeypatch.setattr(curatornet_model, "build_sampler", no_sampler)

    def kill(name, epoch=None, step=None, **_):  # after epoch 2's mid-epoch record at step 4
        if (name, epoch, step) == ("step", 2, 6):
            raise runstate.SimulatedKill(name)
    runstate.HOOKS.append(kill)
    try:
        with pytest.raises(runstate.SimulatedKill):
            trainer.train(streamed_config)
    finally:
        runstate.HOOKS.remove(kill)
    _, streamed = trainer.train(streamed_config, return_model=True)  # resumes: skips the 12 batches trained on
    assert sampled.optimizer.iterations.numpy() == streamed.optimizer.iterations.numpy() == 16
    for a, b in zip(sampled.trainable_variables, streamed.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)


def test_records_made_for_another_config_are_refused_by_file_and_key(world, tmp_path, capsys):
    config = config_of(world, tmp_path)
    out = str(tmp_path / "records")
    generate.write_triplets(config, out, runner="local", num_shards=1)
    other = config_of(world, tmp_path, "model.curatornet.num_triplets=4000", f"model.curatornet.triplets_path={out}")
    with pytest.raises(DataError) as raised:
        triplet_records.record_dataset(other, training_dataset(other), 128)
    assert raised.value.path == manifest_path(out) and raised.value.key == "model.curatornet.num_triplets"
    assert "num_triplets=3000" in str(raised.value) and "4000" in str(raised.value)
    other = config_of(world, tmp_path, "runtime.seed=7", f"model.curatornet.triplets_path={out}")
    with pytest.raises(DataError, match="key 'runtime.seed'"):
        triplet_records.record_dataset(other, training_dataset(other), 128)
    os.remove(os.path.join(out, shards.shard_name(0, 1)))
    config.model.curatornet.triplets_path = out
    with pytest.raises(DataError, match="shard missing"):
        triplet_records.record_dataset(config, training_dataset(config), 128)
    # Through the CLI: one paragraph, exit code 2.
    code = cli.main(["train", "--config", os.path.join(os.path.dirname(__file__), "..", "..", "..", "configs",
                                                       "curatornet_synthetic.yaml"),
                     "--set", "data.source=directory", "--set", f"data.path={world}", "--set", "data.features=visual",
                     "--set", f"runtime.model_dir={tmp_path / 'cli_run'}", "--set", "trainer.verbose=0",
                     "--set", "runtime.distribution_strategy=default",
                     "--set", f"model.curatornet.triplets_path={tmp_path / 'nowhere'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "tfvrec train: error:" in err and "nowhere" in err and "tfvrec triplets" in err


def test_cli_writes_the_records(world, tmp_path, capsys):
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text("experiment: curatornet\n")
    sets = ["data.source=directory", f"data.path={world}", "data.features=visual", *SMALL,
            "model.curatornet.item_units=64"]
    argv = ["triplets", "--config", str(config_file), "--out", str(tmp_path / "out"), "--runner", "local",
            "--num_shards", "2"]
    for s in sets:
        argv += ["--set", s]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "3,000 curatornet triplets in 2 shards" in out and "model.curatornet.triplets_path=" in out
    assert sorted(os.listdir(tmp_path / "out")) == [".tfvrec-output", "triplets-00000-of-00002.tfrecord.gz",
                                                    "triplets-00001-of-00002.tfrecord.gz", "triplets.json"]
    assert cli.main(["triplets", "--config", str(config_file), "--out", str(tmp_path / "x"),
                     "--num_shards", "0"] + [a for s in sets for a in ("--set", s)]) == 2
