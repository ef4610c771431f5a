"""The demo's claim (configs/demo.yaml, `make demo`) at a small size: in a one-of-a-kind art store,
what a user buys next is a work nobody bought before, so ids tell nothing about it (BPR-MF and
popularity are at chance) while CuratorNet finds it from the image — over two training seeds, by a
margin beyond their spread. The shipped size's figures are in docs/models/curatornet.md."""
import os

import numpy as np
import pytest

from tfvrec import config as config_lib
from tfvrec.training import trainer

from conftest import REPO

# Half the demo's store, the same shape: 25 works per artist, ~1.5× as many works as purchases.
SMALL = ["data.synthetic.num_users=300", "data.synthetic.num_items=3750", "data.synthetic.num_artists=150",
         "model.curatornet.num_clusters=50", "model.curatornet.cluster_restarts=2",
         "model.curatornet.num_triplets=300000", "trainer.epochs=4", "trainer.steps_per_epoch=150",
         "eval.baselines=[bpr,popularity]", "eval.protocols=[new_items]", "trainer.verbose=0",
         "trainer.tensorboard_summaries=false", "runtime.distribution_strategy=default"]
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def recall(tmp_path_factory):
    """New-item R@20 of the test baskets per row, one value per training seed (the same world)."""
    cache = tmp_path_factory.mktemp("cache")
    out = {name: [] for name in ("curatornet", "bpr", "popularity")}
    for seed in SEEDS:
        config = config_lib.load_config(os.path.join(REPO, "configs", "demo.yaml"), SMALL + [
            f"runtime.seed={seed}", f"runtime.model_dir={tmp_path_factory.mktemp(f'demo{seed}')}",
            f"data.cache_dir={cache}"])
        rows = dict(trainer.train(config))
        assert all(rows[name].protocol == "new_items" for name in out)
        for name in out:
            out[name].append(rows[name].metrics["recall@20"])
    print({name: np.round(values, 4).tolist() for name, values in out.items()})
    return {name: np.array(values) for name, values in out.items()}


def test_curatornet_finds_new_works_that_ids_cannot(recall):
    curatornet = recall["curatornet"]
    for name in ("bpr", "popularity"):
        other = recall[name]
        spread = np.ptp(curatornet) + np.ptp(other)
        assert curatornet.min() - other.max() > spread, (name, curatornet, other)
        # At chance: the test works have no training purchase, so neither ids nor counts tell them apart.
        assert other.max() < 0.03, (name, other)
    assert curatornet.min() > 0.06, curatornet
