"""Section ``serving_load``: ``tfvrec serve`` under concurrent gRPC clients, with a version swap mid-run (issue 6).

Builds a 100k-item export through the real export path (synthetic vectors, d=64,
10k known users), starts ``tfvrec serve`` in its own process on 127.0.0.1
(`tfvrec.serving.server.launch`), and runs ``clients`` client threads (one gRPC channel
each, the official ``PredictionServiceStub``), each sending back-to-back ``serving_default``
requests (one random known user, K=10) for ``seconds``. Halfway through, a new version is
published the way the exporter publishes one (written aside under a hidden name,
then renamed into place); the server must load it, warm it up and swap it in with
no failed request. Records p50/p99 latency, QPS, failures, and when version 2 was
first served. A failed request or a version never served fails the command (exit code 1).
`build` and `run_load` are shared with the ``peers_serving`` section.

    python tools/bench.py --sections serving_load [--option indexes=['brute_force'] --option seconds=10]
"""
import os
import shutil
import tempfile
import threading
import time

import numpy as np

from harness import Section
from harness import paths as P


def build(base, index, args):
    from tfvrec.config import ExportConfig
    from tfvrec.serving import module as module_lib, parts as parts_lib, versions
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(200, args.dim)).astype(np.float32)
    items = (centres[rng.integers(0, 200, args.items)] + 0.6 * rng.normal(size=(args.items, args.dim)))
    users = (centres[rng.integers(0, 200, args.users)] + 0.6 * rng.normal(size=(args.users, args.dim)))
    seen = [rng.choice(args.items, 20, replace=False) for _ in range(args.users)]  # excluded, as in production
    parts = parts_lib.ServingParts(
        model_name="load", item_ids=np.array([f"i{n}" for n in range(args.items)]),
        item_vectors=items.astype(np.float32), user_ids=np.array([f"u{n}" for n in range(args.users)]),
        user_vectors=users.astype(np.float32), seen=seen)
    module = module_lib.ServingModule(parts, ExportConfig(index=index, max_k=100, default_k=10))
    version, path = versions.write_version(module, base, metadata={"benchmark": "bench_serving_load"})
    return path


def publish_copy(base, source_version, new_version):
    """A new version, published like the exporter does: copied aside, then renamed into place."""
    from tfvrec.serving import versions
    tmp = tempfile.mkdtemp(prefix=versions.TMP_PREFIX, dir=base)
    shutil.rmtree(tmp)
    shutil.copytree(os.path.join(base, str(source_version)), tmp)
    os.rename(tmp, os.path.join(base, str(new_version)))


def start_server(config_file, extra=()):
    """``tfvrec serve`` in its own process (`tfvrec.serving.server.launch`; ``extra``: more of its flags)."""
    from tfvrec.serving.server import launch
    return launch.start(config_file, rest=False, poll_seconds=1, extra=extra, timeout=600)


def run_load(port, base, args, clients=None, seconds=None, swap=True):
    """``clients`` (default ``args.clients``) back-to-back gRPC clients for ``seconds``; with ``swap``, version 2
    is published halfway through, and the run goes on until it is served (1 s more; at most 2 minutes more)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    clients, seconds = clients or args.clients, seconds or args.seconds
    stop, served_v2 = threading.Event(), threading.Event()
    results = []  # per client: (latencies, failures, [(time, version)])
    start = time.time()

    def client(seed):
        rng = np.random.default_rng(seed)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        latencies, failures, versions = [], [], []
        while not stop.is_set():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "load"
            request.inputs["user"].CopyFrom(tf.make_tensor_proto(np.array([f"u{rng.integers(args.users)}"], object)))
            t = time.perf_counter()
            try:
                response = stub.Predict(request, timeout=30)
                latencies.append((time.time() - start, time.perf_counter() - t))
                if not versions or versions[-1][1] != response.model_spec.version.value:
                    versions.append((time.time() - start, response.model_spec.version.value))
                    if response.model_spec.version.value == 2:
                        served_v2.set()
            except grpc.RpcError as e:
                failures.append(f"{e.code()}: {e.details()}")
        channel.close()
        results.append((latencies, failures, versions))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 2)
    swap_at = time.time() - start
    if swap:
        publish_copy(base, 1, 2)
    time.sleep(seconds / 2)
    if swap:  # a loaded machine may take longer than the second half to load and warm v2: wait (≤ 2 min) plus 1 s
        if served_v2.wait(timeout=120):
            time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.time() - start
    done = np.concatenate([np.array(r[0]).reshape(-1, 2) for r in results])  # (finished at, latency)
    failures = [f for r in results for f in r[1]]
    first_v2 = min((t for r in results for t, v in r[2] if v == 2), default=None)

    def window(lo, hi):
        sel = done[(done[:, 0] >= lo) & (done[:, 0] < hi)][:, 1]
        if not len(sel):
            return {"requests": 0, "qps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
        return {"requests": len(sel), "qps": len(sel) / max(hi - lo, 1e-9), "p50_ms": 1000 * np.percentile(sel, 50),
                "p99_ms": 1000 * np.percentile(sel, 99)}
    swapped = first_v2 if first_v2 is not None else elapsed
    return dict(window(0, elapsed), failures=failures, swap_at=swap_at, first_v2=first_v2, seconds=elapsed,
                steady=window(0, swap_at), swapping=window(swap_at, swapped), after=window(swapped, elapsed))


def bench(index, args, workdir, log=print):
    from tfvrec.serving.model_config import update_models_config
    root = os.path.join(workdir, index)
    base = os.path.join(root, "models", "load")
    log(f"{index}: building a {args.items:,}-item export")
    build(base, index, args)
    config_file = update_models_config(os.path.join(root, "models.config"), "load", base)
    with start_server(config_file) as server:
        result = run_load(server.grpc_port, base, args)
    log(f"{index}: {result['requests']} requests, {result['qps']:.1f} QPS, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, {len(result['failures'])} failed; swap at {result['swap_at']:.1f}s, "
        f"version 2 served from {result['first_v2']}")
    for failure in result["failures"][:5]:
        log(f"failure: {failure}")
    return result


def run(ctx):
    import argparse
    args = argparse.Namespace(**ctx.options)
    with ctx.scratch("serving") as workdir:
        results = {index: bench(index, args, workdir, ctx.log) for index in args.indexes}
    lines = [
        "## Serving under load (`tfvrec serve`, gRPC)",
        "",
        f"{args.clients} concurrent gRPC clients (official `PredictionServiceStub`, "
        f"one channel each, back-to-back requests) for {args.seconds:.0f} s or more (until version 2 is served) "
        f"against a {args.items:,}-item export "
        f"(d={args.dim}, {args.users:,} users, each with 20 excluded training items); one user per request, K=10. "
        "Server and clients share this machine's CPU cores. Halfway through, version 2 is published "
        "(written aside, renamed into place); the server loads and warms it up while serving, then swaps. "
        + "; ".join(f"{index}: {len(r['failures'])} failed requests of {r['requests'] + len(r['failures']):,}, "
                    + (f"version 2 served from {r['first_v2']:.1f} s" if r["first_v2"] is not None
                       else "version 2 never served")
                    for index, r in results.items()) + ".",
        "",
        "| index | window | requests | QPS | p50 ms | p99 ms | failed requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, r in results.items():
        swap = f"{r['swap_at']:.1f} → {r['first_v2']:.1f} s" if r["first_v2"] is not None else "never served"
        windows = ((f"whole run ({r['seconds']:.0f} s)", r), (f"before publishing v2 (0 → {r['swap_at']:.1f} s)",
                                                              r["steady"]),
                   (f"v2 loading + warm-up ({swap})", r["swapping"]), ("after the swap", r["after"]))
        for label, w in windows:
            failed = len(r["failures"]) if w is r else ""
            lines.append(f"| {index} | {label} | {w['requests']:,} | {w['qps']:.1f} | {w['p50_ms']:.1f} | "
                         f"{w['p99_ms']:.1f} | {failed} |")
    broken = [index for index, r in results.items() if r["failures"] or r["first_v2"] is None]
    if broken:
        ctx.failed = f"failed requests or version 2 never served: {', '.join(broken)}"
    return "\n".join(lines)


SECTIONS = [Section(
    name="serving_load", title="tfvrec serve under 8 gRPC clients with a version swap mid-run", run=run,
    paths=P.SERVER, make="bench-serving",
    options={"indexes": ["brute_force", "scann"], "clients": 8, "seconds": 30.0, "items": 100_000, "users": 10_000,
             "dim": 64, "seed": 0},
    quick={"indexes": ["scann"], "clients": 2, "seconds": 4.0, "items": 2000, "users": 200, "dim": 16})]
