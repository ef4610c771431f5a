"""Items that have content but no interaction (images that just arrived) are items all the way through: they
load, train alongside, are served by the export and are recommended, by content models, for what they look like."""
import os

import numpy as np
import pandas as pd
import pytest

from tfvrec import config as config_lib
from tfvrec.data.dataset import load_dataset, write_dataset
from tfvrec.inference import Recommender
from tfvrec.serving.client import ExportedModel
from tfvrec.serving.export import export_run
from tfvrec.training import trainer

CLUSTERS, PER_CLUSTER, NEW_PER_CLUSTER, USERS = 3, 16, 4, 36


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Users like the items of their own cluster; each cluster also has 4 items nobody has interacted with,
    whose features sit in the cluster like the rest."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CLUSTERS, 8)) * 4
    ids, content, cluster_of = [], [], []
    for c in range(CLUSTERS):
        for n in range(PER_CLUSTER + NEW_PER_CLUSTER):
            ids.append(f"c{c}{'new' if n >= PER_CLUSTER else 'old'}{n}")
            content.append(centres[c] + rng.normal(size=8) * 0.3)
            cluster_of.append(c)
    rows = []
    for u in range(USERS):
        own = [i for i, c in enumerate(cluster_of) if c == u % CLUSTERS and "old" in ids[i]]
        for t, i in enumerate(rng.choice(own, 8, replace=False)):
            rows.append((f"u{u}", ids[i], t))
    interactions = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    path = write_dataset(str(tmp_path_factory.mktemp("data") / "arrivals"),
                         users=pd.DataFrame({"user": [f"u{u}" for u in range(USERS)]}),
                         items=pd.DataFrame({"item": ids}), interactions={"train": interactions},
                         features={"visual": (ids, np.asarray(content, np.float32))}, overwrite=True)
    return path, np.array(ids), np.array(cluster_of)


def test_items_without_interactions_are_trained_served_and_recommended(world, tmp_path):
    path, ids, cluster_of = world
    dataset = load_dataset(path)
    new = [i for i in ids if "new" in i]
    assert dataset.num_items == len(ids) and not set(new) & set(dataset.item_ids[dataset.split("train")["item"]])
    model_dir = str(tmp_path / "run")
    trainer.train(config_lib.load_config(None, [
        "data.source=directory", f"data.path={path}", "data.features=visual", f"runtime.model_dir={model_dir}",
        "runtime.distribution_strategy=default", "model.curatornet.item_units=16", "model.curatornet.profile_units=16",
        "model.curatornet.num_clusters=3", "model.curatornet.cluster_restarts=1", "model.curatornet.cluster_dims=4",
        "model.curatornet.num_triplets=20000", "trainer.epochs=2", "trainer.steps_per_epoch=40",
        "trainer.batch_size=64", "trainer.learning_rate=0.01", "trainer.validation_split=", "trainer.verbose=0",
        "eval.baselines=[]", "eval.split=train"], experiment="curatornet"))
    rec = Recommender(model_dir)
    # In process: a user of cluster 0 gets cluster 0's never-bought items above every other cluster's.
    ranking = [r["item"] for r in rec.recommend("u0", k=len(ids))]
    assert set(new) <= set(ranking)
    best_new = [i for i in ranking if "new" in i][:NEW_PER_CLUSTER]
    assert all(i.startswith("c0") for i in best_new), best_new
    # Served: the export's catalogue holds them, and answers as the in-process read path does.
    export = str(tmp_path / "export" / "models" / "arrivals")
    info = export_run(model_dir, export, models_config="")
    served = ExportedModel(os.path.join(export, str(info["version"])))
    answer = served.recommend(user=np.array(["u0"], object), k=len(ids))
    assert [str(i) for i in answer["item_ids"][0] if i] == ranking  # ("" pads the user's own 8 items)
