"""Section ``peers_serving`` — point 5: ``tfvrec serve`` under concurrent gRPC clients, against its floor.

The export, server and clients are ``tools/bench_serving_load.py``'s (a 100k-item export through the real
export path, synthetic vectors d=64, 10k known users with 20 excluded training items each; ``tfvrec serve``
in its own process on 127.0.0.1; one official ``PredictionServiceStub`` channel per client thread, back-to-back
``serving_default`` requests for one random known user, K=10), here without a version swap. For brute force
and ScaNN, with the server's request batching off and on (``--enable_batching``, its defaults), 1, 8 and 32
clients in turn. The floor is the same export loaded in-process and called through its ``serving_default``
signature one user at a time (``tools/bench_scann.py``'s measurement: p50/p99 of sequential single-user
calls, QPS of batches of 100). Goal (issue 18): p99 at 8 clients ≤ 3 × the in-process p99, and ≤ 20 ms for
ScaNN.
"""
import argparse
import os

import numpy as np

from harness import Section
from harness import paths as P
from peers import ratio

TITLE = "Serving: `tfvrec serve` (gRPC) at 1, 8 and 32 clients against the in-process call"


def run(ctx):
    import bench_scann
    import bench_serving_load as load
    from tfvrec.serving.model_config import update_models_config
    log = ctx.log
    settings = argparse.Namespace(items=ctx.opt("items"), users=ctx.opt("users"), dim=ctx.opt("dim"), seed=0,
                                  clients=8, seconds=ctx.opt("seconds"))
    floor_args = argparse.Namespace(batch=100, single_queries=ctx.opt("single_queries"),
                                    qps_queries=ctx.opt("qps_queries"))
    clients_counts = ctx.opt("clients")
    floors, rows = {}, []
    with ctx.scratch("serving") as workdir:
        for index in ctx.opt("indexes"):
            root = os.path.join(workdir, index)
            base = os.path.join(root, "models", "load")
            log(f"serving: building a {settings.items:,}-item {index} export")
            path = load.build(base, index, settings)
            users = np.array([f"u{n}" for n in range(min(settings.users, 1000))], object)
            _, floors[index] = bench_scann.measure(path, users, floor_args)
            floor = floors[index]
            log(f"serving: {index} in-process p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms")
            config_file = update_models_config(os.path.join(root, "models.config"), "load", base)
            for batching in ctx.opt("batching"):
                extra = ["--enable_batching"] if batching else []
                with load.start_server(config_file, extra) as server:
                    port = server.grpc_port
                    load.run_load(port, base, settings, clients=8, seconds=ctx.opt("warmup"), swap=False)  # warm-up
                    for clients in clients_counts:
                        result = load.run_load(port, base, settings, clients=clients, swap=False)
                        log(f"serving: {index}, batching {'on' if batching else 'off'}, {clients} clients: "
                            f"{result['qps']:.0f} QPS, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                            f"{len(result['failures'])} failed")
                        rows.append((index, batching, clients, result))

    lines = ["| index | server batching | clients | requests | QPS | p50 ms | p99 ms | p99 / in-process p99 | "
             "failed |", "|---|---|---|---|---|---|---|---|---|"]
    for index, floor in floors.items():
        lines.append(f"| {index} | in-process signature call (the floor) | 1 (sequential) | "
                     f"{floor_args.single_queries:,} | {floor['qps']:,.0f} (batches of 100) | {floor['p50_ms']:.2f} | "
                     f"{floor['p99_ms']:.2f} | 1 | |")
    for index, batching, clients, r in rows:
        lines.append(f"| {index} | {'on' if batching else 'off'} | {clients} | {r['requests']:,} | {r['qps']:,.1f} | "
                     f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {ratio(r['p99_ms'], floors[index]['p99_ms'])} | "
                     f"{len(r['failures'])} |")
    goals = []
    for index, batching, clients, r in rows:
        if clients != 8:
            continue
        limit = 3 * floors[index]["p99_ms"]
        met = r["p99_ms"] <= limit and (index != "scann" or r["p99_ms"] <= 20)
        also = " and 20 ms" if index == "scann" else ""
        goals.append(f"{index}, batching {'on' if batching else 'off'}: p99 {r['p99_ms']:.1f} ms vs 3 × in-process "
                     f"{limit:.1f} ms{also} — {'met' if met else 'NOT met'}")
    return "\n".join([
        f"## {TITLE}", "",
        f"{settings.items:,}-item export "
        f"(d={settings.dim}, {settings.users:,} users with 20 excluded training items each), `tfvrec serve` in its "
        f"own process on 127.0.0.1 sharing the {os.cpu_count()} cores with the clients; {settings.seconds:g} s per "
        f"client count after a {ctx.opt('warmup'):g} s warm-up, no version swap; one user per request, K=10. Ratio "
        "column: p99 over the in-process p99 of the same export.", "", "\n".join(lines), "",
        "Goal at 8 clients (p99 ≤ 3 × in-process p99; ScaNN also ≤ 20 ms): " + "; ".join(goals) + "."])


SECTIONS = [Section(
    name="peers_serving", title=TITLE, run=run, runs="bench_peers",
    paths=P.SERVER + ("tools/bench_serving_load.py", "tools/bench_scann.py"), group="peers", make="bench-peers",
    options={"items": 100_000, "users": 10_000, "dim": 64, "seconds": 20.0, "clients": [1, 8, 32],
             "indexes": ["brute_force", "scann"], "batching": [False, True], "warmup": 2.0, "single_queries": 500,
             "qps_queries": 5000},
    quick={"items": 2000, "users": 200, "dim": 16, "seconds": 1.5, "clients": [1, 8], "indexes": ["brute_force"],
           "batching": [True], "warmup": 0.5, "single_queries": 30, "qps_queries": 300})]
