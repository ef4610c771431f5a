"""BPR-MF under ParameterServerStrategy on an in-process cluster (2 workers, 2 parameter servers,
loopback only): its tables are sharded over the servers, it learns the planted world as well as
one process does, and its checkpoint restores under another shard count and without a cluster."""
import json
import os
import socket

import numpy as np
import pytest
import tensorflow as tf

from tfvrec.runs import Run
from tfvrec.data.dataset import load_dataset
from tfvrec.training import trainer

from planted import planted_dataset
from test_trainer import tiny_config


def _port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_cluster(workers=2, ps=2):
    """TF's in-process cluster (as ``multi_worker_test_base.create_in_process_cluster``): servers for the
    workers and parameter servers in this process; the chief is the caller (TF_CONFIG)."""
    cluster = {"chief": [f"localhost:{_port()}"], "worker": [f"localhost:{_port()}" for _ in range(workers)],
               "ps": [f"localhost:{_port()}" for _ in range(ps)]}
    spec = tf.train.ClusterSpec(cluster)
    config = tf.compat.v1.ConfigProto()
    config.inter_op_parallelism_threads = workers + 2  # in-process workers share one pool: avoid a deadlock
    servers = [tf.distribute.Server(spec, job_name=kind, task_index=i, protocol="grpc", start=True,
                                    config=config if kind == "worker" else None)
               for kind in ("worker", "ps") for i in range(len(cluster[kind]))]
    os.environ["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
    return servers


@pytest.mark.fresh_process
def test_parameter_servers_shard_the_tables_and_learn_like_one_process(tmp_path):
    data = planted_dataset(str(tmp_path / "data"))
    sets = ["eval.protocols=[sampled:100]", "eval.repeats=5", "trainer.validation_split=",
            "runtime.ps_min_shard_bytes=256"]
    single_rows = trainer.train(tiny_config(data, str(tmp_path / "single"), *sets))
    servers = start_cluster()
    try:
        config = tiny_config(data, str(tmp_path / "ps"), *sets)
        config.runtime.distribution_strategy = "parameter_server"
        rows, model = trainer.train(config, return_model=True)
        shards = [v.name for v in model.variables if "user_embedding" in v.name]
        assert len(shards) == 2 and all("part_" in name for name in shards)  # P split over the two servers
        single, ps = dict(single_rows)["bpr"], dict(rows)["bpr"]
        popularity = dict(rows)["popularity"]
        assert ps.metrics["hr@10"] > popularity.metrics["hr@10"] + 0.2
        # The same quality: the two 95% intervals over users overlap (asynchronous training is not
        # bit-reproducible, so the figure moves from run to run within its spread).
        (low, high), (ps_low, ps_high) = single.ci["hr@10"], ps.ci["hr@10"]
        assert ps_low <= high and low <= ps_high, (ps.metrics["hr@10"], ps.ci["hr@10"], single.ci["hr@10"])
        history = json.load(open(tmp_path / "ps" / "training_state.json"))["history"]
        assert len(history) == 6 and history[-1]["loss"] < history[0]["loss"]

        users, items = np.arange(5, dtype=np.int64), np.tile(np.arange(8, dtype=np.int64), (5, 1))
        expected = model.score(users, items)
        # Another shard count: one partition per table, same servers.
        one_shard = tf.distribute.experimental.ParameterServerStrategy(
            tf.distribute.cluster_resolver.TFConfigClusterResolver(),
            variable_partitioner=tf.distribute.experimental.partitioners.FixedShardsPartitioner(1))
        restored = trainer.build_model(config, load_dataset(data), one_shard)
        Run(str(tmp_path / "ps")).restore(restored)
        np.testing.assert_allclose(restored.score(users, items), expected, rtol=1e-6)
    finally:
        os.environ.pop("TF_CONFIG", None)
        del servers
    # No cluster at all: the run loads under the default strategy.
    _, _, loaded = Run(str(tmp_path / "ps")).load()
    np.testing.assert_allclose(loaded.score(users, items), expected, rtol=1e-6)


@pytest.mark.fresh_process
def test_hasc_trains_under_parameter_servers(tmp_path):
    from tfvrec import config as config_lib
    from conftest import REPO
    servers = start_cluster()
    try:
        config = config_lib.load_config(os.path.join(REPO, "configs", "hasc_synthetic.yaml"), [
            f"runtime.model_dir={tmp_path / 'hasc'}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.synthetic.num_users=150", "data.synthetic.num_items=300", "data.synthetic.num_creators=30",
            "trainer.epochs=3", "trainer.verbose=0", "eval.repeats=2", "eval.protocols=[sampled:100]",
            "runtime.distribution_strategy=parameter_server", "runtime.ps_min_shard_bytes=256"])
        rows, model = trainer.train(config, return_model=True)
        tables = {v.name.split("/")[1] for v in model.variables if "part_" in v.name}
        assert {"base_user_embedding", "auxiliary_user_embedding", "base_item_embedding"} <= tables
        results = dict(rows)
        assert results["hasc"].metrics["auc"] > 0.6  # learned something (popularity-level on this tiny world)
        history = json.load(open(tmp_path / "hasc" / "training_state.json"))["history"]
        assert len(history) == 3 and json.load(open(tmp_path / "hasc" / "bpr_init" / "training_state.json"))["done"]
    finally:
        os.environ.pop("TF_CONFIG", None)
        del servers
