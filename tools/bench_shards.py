"""Benchmark: sharded retrieval on one machine — latency and recall of S = 1, 2, 4 shards.

    .venv/bin/python tools/bench_shards.py [--items 200000] [--dim 64]

A clustered synthetic catalogue (the generator of ``tools/bench_scann.py``) is exported whole
and as S shards (``export.num_shards``), brute force and ScaNN; a `ShardedClient` fans each
query out to the shards (threads, in process) and merges their top-10. Reported per S: the
recall@10 of the merged answer against the unsharded brute-force one (1 by construction for
brute force: the test suite checks it), p50 / p99 latency of single queries and the queries/s
of batches of 100. On one machine the shards share its cores, so S > 1 shows the cost of the
fan-out and merge; the gain of sharding is the memory and the cores of S machines, which
``docs/scale.md`` works out from these figures.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import tfvrec  # noqa: E402,F401

from tfvrec import benchmark_report  # noqa: E402
from tfvrec.config import ExportConfig  # noqa: E402
from tfvrec.serving import module as module_lib, parts as parts_lib, sharded, versions  # noqa: E402
from tfvrec.serving.client import ExportedModel  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
from bench_scann import synthetic  # noqa: E402


def export(items, queries, base, index, num_shards, shard):
    parts = parts_lib.ServingParts(
        model_name="synthetic", item_ids=np.array([f"i{n}" for n in range(len(items))]), item_vectors=items,
        user_ids=np.array([f"q{n}" for n in range(len(queries))]), user_vectors=queries, distance="dot_product")
    config = ExportConfig(index=index, max_k=100, default_k=10, exclude_seen=False, rerank_candidates=100,
                          num_shards=num_shards, shard=shard)
    return versions.write_version(module_lib.ServingModule(parts, config), base, verify=False)[1]


def measure(client, query_ids, reference, singles=200, batch=100, batches=10):
    answer = np.concatenate([client.recommend(user=list(query_ids[lo:lo + batch]), k=10)["item_ids"]
                             for lo in range(0, len(query_ids), batch)])
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(answer, reference)])
    client.recommend(user=[query_ids[0]], k=10)  # warm
    latencies = []
    for q in query_ids[:singles]:
        start = time.perf_counter()
        client.recommend(user=[q], k=10)
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    for b in range(batches):
        lo = (b * batch) % max(1, len(query_ids) - batch + 1)
        client.recommend(user=list(query_ids[lo:lo + batch]), k=10)
    qps = batches * batch / (time.perf_counter() - start)
    return recall, 1000 * np.percentile(latencies, 50), 1000 * np.percentile(latencies, 99), qps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--no_report", action="store_true")
    args = parser.parse_args(argv)
    work = os.path.join(REPO, "runs", "bench_shards")
    shutil.rmtree(work, ignore_errors=True)
    load_start = os.getloadavg()[0]
    items, queries = synthetic(args.items, args.dim, args.queries, clusters=200, seed=0)
    query_ids = np.array([f"q{n}" for n in range(args.queries)])
    reference_model = ExportedModel(export(items, queries, os.path.join(work, "whole"), "brute_force", 1, 0))
    reference = np.concatenate([reference_model.recommend(user=list(query_ids[lo:lo + 100]), k=10)["item_ids"]
                                for lo in range(0, args.queries, 100)])
    rows = []
    for index in ("brute_force", "scann"):
        for num_shards in args.shards:
            paths = [export(items, queries, os.path.join(work, f"{index}-{num_shards}-{s}"), index, num_shards, s)
                     for s in range(num_shards)]
            client = sharded.ShardedClient(sharded.local_shards(paths))
            recall, p50, p99, qps = measure(client, query_ids, reference)
            rows.append(f"| {index} | {num_shards} | {recall:.4f} | {p50:.1f} | {p99:.1f} | {qps:.0f} |")
            print(rows[-1], flush=True)
    lines = ["## Sharded retrieval on one machine",
             "",
             f"Command: `.venv/bin/python tools/bench_shards.py --items {args.items} --dim {args.dim}`. A clustered "
             f"catalogue of {args.items:,} × {args.dim} (dot product), {args.queries} queries; S shard exports "
             "(stable CRC-32 of the item id), queried in process by `tfvrec.serving.sharded.ShardedClient` (one "
             "thread per shard) and merged. Recall@10 against the unsharded brute-force answer; latency of single "
             "queries (p50 / p99, ms) and queries/s of batches of 100. The shards share this machine's 2 cores.",
             "",
             "| index | shards S | recall@10 | p50 ms | p99 ms | QPS (batch 100) |",
             "|---|---|---|---|---|---|", *rows, "",
             f"Load average at start {load_start:.2f}, at the end {os.getloadavg()[0]:.2f} (latencies taken above "
             "2.5 are not speed measurements)."]
    benchmark_report.publish("sharded_retrieval", "\n".join(lines), write=not args.no_report)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
