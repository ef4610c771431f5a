"""Section ``scann``: ScaNN vs brute-force retrieval in tfvrec exports, on synthetic catalogues (issue 6).

For each catalogue size (default 100k and 1M items, d=200) the section builds two
exports through the real export path (`tfvrec.serving.module.ServingModule` and
`tfvrec.serving.versions.write_version`: atomic, saved, re-loaded and warmed up), one with
``export.index=brute_force`` and one with ``export.index=scann``, then loads both
SavedModels and measures through their ``serving_default`` signature:

- recall@10 of ScaNN against the exact brute-force top-10 (over ``queries`` queries);
- single-query latency (p50, p99) and batched throughput (QPS, batches of ``batch``);
- index build time and export size on disk.

Synthetic data: item and query vectors are drawn around ``clusters`` random
centres (recommender embeddings are clustered; isotropic Gaussian data is the
worst case for any partitioning index and unlike any trained model). Queries are
the known "users" of the export, so the timings include the id lookup and output
formatting a client pays for. ScaNN candidates are re-scored exactly
(``export.rerank_candidates``), so its scores equal brute force's for the items it finds.
`synthetic` (the clustered catalogue) and `measure` (the in-process floor) are shared with the
``sharded_retrieval``, ``peers_ann`` and ``peers_serving`` sections.

    python tools/bench.py --sections scann [--option sizes=[100000]]
"""
import argparse
import gc
import os
import shutil
import time

import numpy as np

from harness import Section
from harness import paths as P



def synthetic(num_items, dim, num_queries, clusters, seed):
    """Clustered item and query vectors (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    items = np.empty((num_items, dim), np.float32)
    chunk = 100_000
    for lo in range(0, num_items, chunk):
        n = min(chunk, num_items - lo)
        items[lo:lo + n] = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    queries = centres[rng.integers(0, clusters, num_queries)] + 0.6 * rng.normal(size=(num_queries, dim))
    return items, queries.astype(np.float32)


def build_export(items, queries, base, index, args):
    from tfvrec.config import ExportConfig
    from tfvrec.serving import module as module_lib, parts as parts_lib, versions
    parts = parts_lib.ServingParts(
        model_name="synthetic", item_ids=np.array([f"i{n}" for n in range(len(items))]), item_vectors=items,
        user_ids=np.array([f"q{n}" for n in range(len(queries))]), user_vectors=queries, distance="dot_product")
    config = ExportConfig(index=index, max_k=100, default_k=10, exclude_seen=False,
                          rerank_candidates=args.rerank_candidates, scann_num_leaves=args.num_leaves,
                          scann_leaves_to_search=args.leaves_to_search)
    start = time.time()
    module = module_lib.ServingModule(parts, config)
    build = module.index_build_seconds
    settings = getattr(module, "scann_settings", None)
    version, path = versions.write_version(module, base, metadata={"benchmark": "bench_scann", "index": index})
    total = time.time() - start
    del module, parts
    gc.collect()
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return {"path": path, "index_build_seconds": build, "export_seconds": total, "bytes": size,
            "settings": settings}


def top_k(function, user_ids, k=10):
    import tensorflow as tf
    out = function(user=tf.constant(user_ids),
                   exclude=tf.zeros([0, 0], tf.string), k=tf.constant(k, tf.int32))
    return out["item_ids"].numpy(), out["scores"].numpy()


def measure(path, query_ids, args):
    import tensorflow as tf
    served = tf.saved_model.load(path)
    function = served.signatures["serving_default"]
    top_k(function, query_ids[:1])  # warm
    ids = np.concatenate([top_k(function, query_ids[lo:lo + args.batch])[0]
                          for lo in range(0, len(query_ids), args.batch)])
    latencies = []
    for q in query_ids[:args.single_queries]:
        start = time.perf_counter()
        top_k(function, [q])
        latencies.append(time.perf_counter() - start)
    batches = max(1, args.qps_queries // args.batch)
    start = time.perf_counter()
    for b in range(batches):
        lo = (b * args.batch) % max(1, len(query_ids) - args.batch + 1)
        top_k(function, query_ids[lo:lo + args.batch])
    qps = batches * args.batch / (time.perf_counter() - start)
    del served, function
    gc.collect()
    return ids, {"p50_ms": 1000 * float(np.percentile(latencies, 50)),
                 "p99_ms": 1000 * float(np.percentile(latencies, 99)), "qps": qps}


def bench_size(num_items, args, workdir, log=print):
    log(f"{num_items:,} items, d={args.dim}")
    items, queries = synthetic(num_items, args.dim, args.queries, args.clusters, args.seed)
    query_ids = np.array([f"q{n}" for n in range(len(queries))], object)
    row = {"items": num_items}
    for index in ("brute_force", "scann"):
        base = os.path.join(workdir, f"{index}_{num_items}")
        built = build_export(items, queries, base, index, args)
        log(f"{index}: export {built['export_seconds']:.1f}s (index build {built['index_build_seconds']:.1f}s), "
            f"{built['bytes'] / 2 ** 20:.0f} MB")
        ids, timing = measure(built["path"], query_ids, args)
        log(f"{index}: p50 {timing['p50_ms']:.2f} ms, p99 {timing['p99_ms']:.2f} ms, {timing['qps']:.0f} QPS")
        row[index] = dict(built, **timing, ids=ids)
        shutil.rmtree(base, ignore_errors=True)
    del items, queries
    gc.collect()
    exact, approx = row["brute_force"]["ids"], row["scann"]["ids"]
    row["recall"] = float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))
    log(f"recall@10 {row['recall']:.4f}")
    return row


def run(ctx):
    args = argparse.Namespace(**ctx.options)
    with ctx.scratch("exports") as workdir:
        rows = [bench_size(n, args, workdir, ctx.log) for n in args.sizes]

    lines = [
        "## ScaNN vs brute force in the serving export",
        "",
        f"Synthetic clustered catalogues (d={args.dim}, {args.clusters} centres), "
        f"{args.queries} queries, K=10, through each export's `serving_default` signature (loaded SavedModel, "
        f"in-process, no network). ScaNN: tfrs `ScaNN` layer (tree + asymmetric hashing, "
        f"{args.rerank_candidates} candidates re-scored exactly); brute force: matmul + top_k, stock TF ops.",
        "",
        "| items | index | leaves (searched) | build s | export MB | recall@10 | single query p50 / p99 ms | "
        f"batched QPS (batch {args.batch}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for index in ("brute_force", "scann"):
            r = row[index]
            settings = r["settings"]
            leaves = f"{settings['num_leaves']} ({settings['num_leaves_to_search']})" if settings else "—"
            recall = f"{row['recall']:.4f}" if index == "scann" else "1 (exact)"
            lines.append(f"| {row['items']:,} | {index} | {leaves} | {r['index_build_seconds']:.1f} | "
                         f"{r['bytes'] / 2 ** 20:.0f} | {recall} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | "
                         f"{r['qps']:.0f} |")
    lines += ["", "| items | ScaNN speed-up, single query (p50) | ScaNN speed-up, batched QPS |", "|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['items']:,} | {row['brute_force']['p50_ms'] / row['scann']['p50_ms']:.1f}× | "
                     f"{row['scann']['qps'] / row['brute_force']['qps']:.1f}× |")
    lines += ["", "Build s: ScaNN index training (k-means tree + hashing codebooks); brute force has no index. "
              "Export MB: the whole version directory (item vectors for exact re-scoring and the `score` "
              "signature, id tables, and for ScaNN its hashed codes)."]
    return "\n".join(lines)


SECTIONS = [Section(
    name="scann", title="ScaNN vs brute force in the serving export (synthetic 100k and 1M items)", run=run,
    paths=P.EXPORT, make="bench-scann",
    options={"sizes": [100_000, 1_000_000], "dim": 200, "queries": 1000, "single_queries": 200, "qps_queries": 2000,
             "batch": 100, "clusters": 1000, "num_leaves": 0, "leaves_to_search": 0, "rerank_candidates": 100,
             "seed": 0},
    quick={"sizes": [3000], "dim": 32, "queries": 100, "single_queries": 20, "qps_queries": 200, "clusters": 30})]
