"""Section ``sharded_retrieval``: sharded retrieval on one machine — latency and recall of S = 1, 2, 4 shards.

    python tools/bench.py --sections sharded_retrieval [--option items=200000 --option dim=64]

A clustered synthetic catalogue (the generator of ``tools/bench_scann.py``) is exported whole
and as S shards (``export.num_shards``), brute force and ScaNN; a `ShardedClient` fans each
query out to the shards (threads, in process) and merges their top-10. Reported per S: the
recall@10 of the merged answer against the unsharded brute-force one (1 by construction for
brute force: the test suite checks it), p50 / p99 latency of single queries and the queries/s
of batches of 100. On one machine the shards share its cores, so S > 1 shows the cost of the
fan-out and merge; the gain of sharding is the memory and the cores of S machines, which
``docs/scale.md`` works out from these figures.
"""
import os
import time

import numpy as np

from bench_scann import synthetic
from harness import Section
from harness import paths as P


def export(items, queries, base, index, num_shards, shard):
    from tfvrec.config import ExportConfig
    from tfvrec.serving import module as module_lib, parts as parts_lib, versions
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


def run(ctx):
    from tfvrec.serving import sharded
    from tfvrec.serving.client import ExportedModel
    items_n, dim, queries_n = ctx.opt("items"), ctx.opt("dim"), ctx.opt("queries")
    items, queries = synthetic(items_n, dim, queries_n, clusters=ctx.opt("clusters"), seed=0)
    query_ids = np.array([f"q{n}" for n in range(queries_n)])
    rows = []
    with ctx.scratch("exports") as work:
        reference_model = ExportedModel(export(items, queries, os.path.join(work, "whole"), "brute_force", 1, 0))
        reference = np.concatenate([reference_model.recommend(user=list(query_ids[lo:lo + 100]), k=10)["item_ids"]
                                    for lo in range(0, queries_n, 100)])
        for index in ("brute_force", "scann"):
            for num_shards in ctx.opt("shards"):
                paths = [export(items, queries, os.path.join(work, f"{index}-{num_shards}-{s}"), index, num_shards, s)
                         for s in range(num_shards)]
                client = sharded.ShardedClient(sharded.local_shards(paths))
                recall, p50, p99, qps = measure(client, query_ids, reference, singles=ctx.opt("singles"))
                rows.append(f"| {index} | {num_shards} | {recall:.4f} | {p50:.1f} | {p99:.1f} | {qps:.0f} |")
                ctx.log(rows[-1])
    lines = ["## Sharded retrieval on one machine",
             "",
             f"A clustered catalogue of {items_n:,} × {dim} (dot product), {queries_n} queries; S shard exports "
             "(stable CRC-32 of the item id), queried in process by `tfvrec.serving.sharded.ShardedClient` (one "
             "thread per shard) and merged. Recall@10 against the unsharded brute-force answer; latency of single "
             "queries (p50 / p99, ms) and queries/s of batches of 100. The shards share this machine's "
             f"{os.cpu_count()} cores.",
             "",
             "| index | shards S | recall@10 | p50 ms | p99 ms | QPS (batch 100) |",
             "|---|---|---|---|---|---|", *rows]
    return "\n".join(lines)


SECTIONS = [Section(
    name="sharded_retrieval", title="Sharded retrieval on one machine: S = 1, 2, 4 shards", run=run,
    paths=P.EXPORT + ("tfvrec/serving/sharded.py", "tfvrec/serving/client.py", "tools/bench_scann.py"),
    make="bench-shards",
    options={"items": 200_000, "dim": 64, "queries": 1000, "shards": [1, 2, 4], "clusters": 200, "singles": 200},
    quick={"items": 2000, "dim": 16, "queries": 100, "shards": [1, 2], "clusters": 20, "singles": 20})]
