"""CDL's triplets as TFRecords (``tfvrec triplets``): the Beam pipeline (DirectRunner) and the in-process
writer write the in-process stream's triplets, epoch after epoch; the trainer streams them as the same
batches (images and augmentation seeds included), and a run from them equals one sampling in process."""
import os

import numpy as np
import pytest

from tfvrec import config as config_lib
from tfvrec.data.errors import DataError
from tfvrec.registry import create_model
from tfvrec.models.cdl import triplet_records
from tfvrec.models.cdl import model as cdl_model
from tfvrec.triplets import generate, shards
from tfvrec.triplets.manifest import manifest_path
from tfvrec.triplets.sources import training_dataset
from tfvrec.training import trainer

pytest.importorskip("apache_beam",
                    reason="Apache Beam not installed (pip install 'tfvrec[beam]'; make test installs it)")

WORLD = ["data.synthetic.num_users=60", "data.synthetic.num_items=120", "data.synthetic.num_creators=12",
         "data.synthetic.num_artists=8", "data.synthetic.image_size=16", "data.synthetic.mean_likes_per_user=15"]
TOWER = ["model.cdl.image_size=16", "model.cdl.conv_filters=[4,4,4,4,4]", "model.cdl.conv_kernels=[3,3,3,3,3]",
         "model.cdl.conv_stride=1", "model.cdl.fc_units=[8]", "model.cdl.embedding_dim=8", "model.cdl.num_clusters=4",
         "model.cdl.triplets_per_user=3"]
TRAIN = ["trainer.batch_size=32", "trainer.epochs=2", "trainer.validation_split=", "trainer.verbose=0",
         "eval.baselines=[]", "eval.repeats=1", "runtime.distribution_strategy=default"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cdl_records")


def config_of(root, name="run", *sets):
    return config_lib.load_config(None, WORLD + TOWER + TRAIN + [
        f"data.cache_dir={root / 'cache'}", f"runtime.model_dir={root / name}", *sets], experiment="cdl")


def in_process(config):
    """The (user, positive, negative) rows the trainer's sampler streams over trainer.epochs epochs."""
    source = generate.triplet_source(config)
    sampler, steps = source.built["sampler"], source.steps
    rows = []
    for _, (u, p, n, _) in zip(range(config.trainer.epochs * steps),
                               sampler.batches(config.runtime.seed, config.trainer.batch_size, steps)):
        rows.extend(zip(u.tolist(), p.tolist(), n.tolist()))
    return rows, steps


def test_beam_and_local_records_are_the_in_process_triplets_in_order(root):
    config = config_of(root)
    expected, steps = in_process(config)
    assert len(expected) == 2 * steps * 32
    for runner in ("beam", "local"):
        out = str(root / f"records_{runner}")
        manifest = generate.write_triplets(config, out, runner=runner, num_shards=3)
        columns = shards.read_rows([os.path.join(out, s["file"]) for s in manifest["shards"]], triplet_records.SCHEMA)
        got = list(zip(columns["user"].tolist(), columns["positive"].tolist(), columns["negative"].tolist()))
        assert got == expected, runner
        np.testing.assert_array_equal(columns["epoch"], np.repeat([0, 1], steps * 32))
        assert manifest["epochs"] == 2 and manifest["steps_per_epoch"] == steps
        assert sum(s["triplets"] for s in manifest["shards"]) == len(expected)


def test_the_trainer_streams_the_records_as_the_in_process_batches(root):
    config = config_of(root)
    out = str(root / "records_stream")
    generate.write_triplets(config, out, runner="beam", num_shards=2)
    dataset = training_dataset(config)
    model = create_model(config, dataset)
    sampled, steps = cdl_model.training_inputs(config, dataset, model, config.runtime.seed)
    config.model.cdl.triplets_path = out
    streamed, same_steps = cdl_model.training_inputs(config, dataset, model, config.runtime.seed)
    assert same_steps == steps
    count = 0
    for a, b in zip(sampled.take(2 * steps), streamed):  # across the epoch boundary, to the records' end
        count += 1
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    assert count == 2 * steps


def test_a_run_trained_from_records_equals_a_run_sampling_in_process(root):
    sets = ["trainer.steps_per_epoch=3", "eval.protocols=[sampled:20]"]
    config = config_of(root, "sampled", *sets)
    out = str(root / "records_run")
    generate.write_triplets(config, out, runner="beam", num_shards=2)
    _, sampled = trainer.train(config, return_model=True)
    _, streamed = trainer.train(config_of(root, "streamed", *sets, f"model.cdl.triplets_path={out}"),
                                return_model=True)
    assert sampled.optimizer.iterations.numpy() == streamed.optimizer.iterations.numpy() == 6
    for a, b in zip(sampled.trainable_variables, streamed.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)


def test_records_for_another_batch_size_or_too_few_epochs_are_refused(root):
    config = config_of(root)
    out = str(root / "records_check")
    generate.write_triplets(config, out, runner="local", num_shards=1)
    dataset = training_dataset(config)
    for sets, key in ((["trainer.batch_size=16"], "trainer.batch_size"), (["trainer.epochs=3"], "trainer.epochs"),
                      (["model.cdl.min_negatives=10"], "model.cdl.min_negatives")):
        other = config_of(root, "run", *sets, f"model.cdl.triplets_path={out}")
        model = cdl_model.create(other, dataset)
        with pytest.raises(DataError) as raised:
            cdl_model.training_inputs(other, dataset, model, other.runtime.seed)
        assert raised.value.path == manifest_path(out) and raised.value.key == key, str(raised.value)
