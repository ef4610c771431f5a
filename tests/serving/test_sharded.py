"""Sharded retrieval: the merged top-K of S shard exports equals the unsharded export's (brute force)."""
import json
import subprocess
import sys

import numpy as np

from tfvrec import config as config_lib
from tfvrec.serving import export, module, sharded
from tfvrec.serving.client import ExportedModel
from tfvrec.training import trainer

from conftest import REPO
from planted import planted_dataset
from test_server import start_server


def test_shards_partition_the_catalogue_stably():
    ids = [f"i{n}" for n in range(500)]
    parts = [module.shard_rows(ids, 3, s) for s in range(3)]
    assert sorted(np.concatenate(parts)) == list(range(500)) and min(len(p) for p in parts) > 120
    # Adding items never moves an existing one to another shard.
    grown = [module.shard_rows(ids + [f"new{n}" for n in range(50)], 3, s) for s in range(3)]
    for before, after in zip(parts, grown):
        assert set(before) <= set(after)


def test_merged_shards_answer_like_the_whole_catalogue(tmp_path):
    data = planted_dataset(str(tmp_path / "data"), num_items=150)
    run = str(tmp_path / "run")
    trainer.train(config_lib.load_config(None, [
        "data.source=directory", f"data.path={data}", f"runtime.model_dir={run}", "trainer.epochs=2",
        "trainer.batch_size=64", "model.bpr.embedding_dim=8", "trainer.verbose=0", "eval.protocols=[full]",
        "eval.repeats=1", "eval.baselines=[]"]))
    whole = ExportedModel(export.export_run(run, str(tmp_path / "models" / "recs"), models_config="")["path"])
    shards = export.export_shards(run, str(tmp_path / "models" / "recs"), 3, models_config="")
    assert [s["name"] for s in shards] == ["recs-0", "recs-1", "recs-2"]
    client = sharded.ShardedClient(sharded.local_shards([s["path"] for s in shards]))
    users = [f"u{n}" for n in range(0, 90, 3)]
    expected = whole.recommend(user=users, k=10)
    merged = client.recommend(user=users, k=10)
    np.testing.assert_array_equal(merged["item_ids"], expected["item_ids"])
    np.testing.assert_allclose(merged["scores"], expected["scores"], rtol=1e-6)
    # Each shard answers from its own items only.
    for shard_index, info in enumerate(shards):
        answer = ExportedModel(info["path"]).recommend(user=users[:2], k=5)["item_ids"]
        assert all(module.shard_rows([i], 3, shard_index).size for i in answer.ravel() if i)
    # The command line: `tfvrec export --shards`, then `tfvrec query --shards` against `tfvrec serve`.
    base = tmp_path / "cli" / "models" / "recs"
    out = subprocess.run([sys.executable, "-m", "tfvrec", "export", "--run", run, "--out", str(base), "--shards", "3"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.count("Exported recs-") == 3, out.stderr[-2000:]
    server, grpc_port, _ = start_server(str(tmp_path / "cli" / "models.config"))
    try:
        out = subprocess.run([sys.executable, "-m", "tfvrec", "query", "--target", f"127.0.0.1:{grpc_port}",
                              "--model", "recs", "--shards", "3", "--user", users[0], "-k", "10"],
                             cwd=REPO, capture_output=True, text=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [r["item"] for r in json.loads(out.stdout)] == list(expected["item_ids"][0])
    # ScaNN shards: as good as each shard's search. Searching every leaf (and re-scoring the
    # candidates exactly) finds the exact answer; the default search (10% of the leaves of a
    # 50-item shard) is a coarse one, as it is for an unsharded index of this tiny catalogue.
    def recall(prefix, sets):
        paths = [s["path"] for s in export.export_shards(run, str(tmp_path / "models" / prefix), 3,
                                                           models_config="", index="scann", sets=sets)]
        ann = sharded.ShardedClient(sharded.local_shards(paths)).recommend(user=users, k=10)
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ann["item_ids"], expected["item_ids"])])
    full_search = recall("ann_all", ["export.scann_num_leaves=4", "export.scann_leaves_to_search=4"])
    print(f"ScaNN shards, recall@10 of the merged answer: every leaf {full_search:.3f}, "
          f"default search {recall('ann', []):.3f}")
    assert full_search >= 0.95
