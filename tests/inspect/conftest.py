"""Tiny runs on the synthetic world (rendered pixels), shared by the inspection tests."""
import os

import pytest

from tfvrec import config as config_lib
from tfvrec.training import trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY_WORLD = ["data.synthetic.num_users=150", "data.synthetic.num_items=300", "data.synthetic.num_creators=30",
              "data.synthetic.num_artists=20", "trainer.verbose=0", "eval.repeats=1",
              "runtime.distribution_strategy=default"]


def tiny_run(name, config_file, tmp_path_factory, *sets):
    root = str(tmp_path_factory.mktemp(name))
    config = config_lib.load_config(os.path.join(REPO, "configs", config_file), [
        f"runtime.model_dir={os.path.join(root, name)}", f"data.cache_dir={os.path.join(root, 'cache')}",
        *TINY_WORLD, *sets])
    rows = trainer.train(config)
    return config.runtime.model_dir, rows


@pytest.fixture(scope="session")
def hasc_run(tmp_path_factory):
    return tiny_run("hasc", "hasc_synthetic.yaml", tmp_path_factory, "trainer.epochs=2",
                    "eval.protocols=[sampled:100]")


@pytest.fixture(scope="session")
def curatornet_run(tmp_path_factory):
    return tiny_run("curatornet", "curatornet_synthetic.yaml", tmp_path_factory, "trainer.epochs=2",
                    "trainer.steps_per_epoch=20", "model.curatornet.num_triplets=20000",
                    "model.curatornet.num_clusters=10", "model.curatornet.cluster_restarts=2",
                    "eval.baselines=[popularity,random]", "eval.protocols=[full]")
