"""`tfvrec recommend --user`: top-K for a known user of any user–item model, by the data set's ids."""
import json
import subprocess
import sys

import numpy as np

from tfvrec import config as config_lib
from tfvrec.inference import Recommender
from tfvrec.training import trainer

from conftest import REPO
from planted import planted_dataset


def test_recommend_by_user_id_from_python_and_the_command_line(tmp_path):
    data = planted_dataset(str(tmp_path / "data"))
    model_dir = str(tmp_path / "run")
    trainer.train(config_lib.load_config(None, [
        "data.source=directory", f"data.path={data}", f"runtime.model_dir={model_dir}", "trainer.epochs=3",
        "trainer.batch_size=64", "trainer.learning_rate=0.05", "model.bpr.embedding_dim=8", "trainer.verbose=0",
        "eval.protocols=[full]", "eval.repeats=1"]))
    rec = Recommender(model_dir)
    user = "u4"
    top = rec.recommend(user, k=5)
    row = int(np.flatnonzero(rec.dataset.user_ids == user)[0])
    expected = rec.model.score_all(np.array([row]))[0]
    expected[rec.dataset.train_items_by_user()[row]] = -np.inf
    assert [t["item"] for t in top] == list(rec.item_ids[np.argsort(-expected, kind="stable")[:5]])
    # Planted clusters (user u4 is in cluster 1): the top items are the user's own cluster's.
    assert all(int(t["item"][1:]) % 3 == 1 for t in top)

    run = [sys.executable, "-m", "tfvrec", "recommend", "--run", model_dir]
    out = subprocess.run(run + ["--user", user, "-k", "5", "--json"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [r["item"] for r in json.loads(out.stdout)] == [t["item"] for t in top]
    for args, message in ((["--user", "nobody"], "user 'nobody' is not a user of this run"),
                          (["--user", user, "--items", "i1"], "not both"),
                          (["--items", "i1"], "model 'bpr' has per-user parameters")):
        out = subprocess.run(run + args, cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr[-500:]
