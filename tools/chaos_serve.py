"""Sections ``chaos_serve`` and ``chaos_serve_hostile``: ``tfvrec serve`` against bursts, slow clients, bad
bodies, partial and corrupt versions, a hot swap under load, request batching (issue 16), large bodies and a
keep-alive flood (issue 30) — on 127.0.0.1 only, bounded in count and time.

    python tools/bench.py --sections chaos_serve chaos_serve_hostile [--option seconds=3]

Each section builds a 20k-item retrieval export through the real export path (synthetic vectors,
d=32, 5k known users) and starts ``tfvrec serve`` in its own process through the package's launcher
(`tfvrec.serving.server.launch`: gRPC and REST on loopback, free ports). ``chaos_serve`` runs, in order:

1. bursts: 3 × 200 simultaneous REST requests (one connection each, opened at once);
2. slow clients: 300 connections that send half a request and stop, while 8 clients keep
   sending requests; the server must answer the half requests 408 and the others 200;
3. oversized bodies (over ``--max_request_bytes``) and malformed JSON bodies: all 400;
4. a version copied in without an atomic rename (file by file, the variables last and
   slowly), then a corrupt version, then a hot swap (atomic rename) — each under 8
   clients (4 gRPC, 4 REST), which must see no failed request;
5. request batching: 16 gRPC clients for a few seconds against the server without and
   with ``--enable_batching`` (QPS and latency).

It records connection resets, status codes, failures and peak server RSS (VmHWM).
``chaos_serve_hostile`` runs, each part against a fresh server with the REST limits of its options
(the server's defaults at full size):

6. large bodies: 16 concurrent 15 MiB REST bodies of short strings (each ~23× that once
   decoded), then 16 concurrent 15 MiB bodies of long strings (decodable within the budget a
   few at a time), then 30 sequential ones; the server's resident memory sampled every 10 ms;
7. keep-alive flood: 1,000 keep-alive connections (the whole connection table), each sending
   a request every ``flood_interval`` seconds and reconnecting after a second when closed or
   refused, while a new client arrives every 0.25 s: its status and time to answer.

A failed check fails the section (``ctx.failed``: ``tools/bench.py`` exits non-zero).
"""
import json
import os
import re
import resource
import selectors
import shutil
import socket
import threading
import time

import numpy as np

from harness import REPO, Section
from harness import paths as P

MAX_REQUEST_BYTES = 1 << 20  # chaos_serve's server: the oversized bodies of scenario 3 are over it
HOST = "127.0.0.1"
PATHS = P.SERVER + ("tfvrec/serving/__init__.py",)


def build(base, ctx):
    from tfvrec.config import ExportConfig
    from tfvrec.serving import module as module_lib, parts as parts_lib, versions
    n_items, n_users = ctx.opt("items"), ctx.opt("users")
    rng = np.random.default_rng(ctx.opt("seed"))
    items = rng.normal(size=(n_items, 32)).astype(np.float32)
    users = rng.normal(size=(n_users, 32)).astype(np.float32)
    seen = [rng.choice(n_items, 10, replace=False) for _ in range(n_users)]
    parts = parts_lib.ServingParts(model_name="chaos", item_ids=np.array([f"i{n}" for n in range(n_items)]),
                                   item_vectors=items, user_ids=np.array([f"u{n}" for n in range(n_users)]),
                                   user_vectors=users, seen=seen)
    module = module_lib.ServingModule(parts, ExportConfig(index="brute_force", max_k=100, default_k=10))
    return versions.write_version(module, base, metadata={"benchmark": "chaos_serve"})[1]


def export(ctx, work):
    """``(config file, base path, version 1's path)`` of the section's export under ``work``."""
    from tfvrec.serving.model_config import update_models_config
    base = os.path.join(work, "models", "chaos")
    ctx.log(f"building a {ctx.opt('items'):,}-item export")
    source = build(base, ctx)
    return update_models_config(os.path.join(work, "models.config"), "chaos", base), base, source


def start_server(config_file, work, *extra):
    """``tfvrec serve`` on free loopback ports (`tfvrec.serving.server.launch`); its log in ``work``."""
    from tfvrec.serving.server import launch
    return launch.start(config_file, poll_seconds=0.5, extra=extra, log_path=os.path.join(work, "serve.log"),
                        timeout=600, cwd=REPO)


def serve_defaults():
    """``tfvrec serve``'s flags and their defaults (its parser's)."""
    from tfvrec.cli import build_parser
    return vars(build_parser().parse_args(["serve"]))


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """The server's resident memory every 10 ms while in the ``with`` block: ``peak`` (MB)."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, rss_mb(pid), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def read_head(conn):
    """The bytes received on ``conn`` up to the end of the answer's head (or until it closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def http(port, request, timeout=60):
    """(status or None, error or None) of one raw request on its own connection."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.sendall(request)
            data = read_head(conn)
    except ConnectionResetError:
        return None, "reset"
    except OSError as e:
        return None, type(e).__name__
    if not data:
        return None, "closed without an answer"
    return int(data.split(b" ", 2)[1]), None


def post(body, path="/v1/models/chaos:predict"):
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def at_once(n, call):
    """``call()`` from ``n`` threads released together (a barrier): their results, in the order they ended."""
    barrier = threading.Barrier(n)
    results, lock = [], threading.Lock()

    def client():
        barrier.wait()
        result = call()
        with lock:
            results.append(result)
    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def burst(port, n, body):
    return at_once(n, lambda: http(port, post(body)))


class Clients:
    """``n`` clients (half gRPC, half REST unless ``grpc_only``) sending back-to-back requests."""

    def __init__(self, grpc_port, rest_port, n, users, grpc_only=False):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
        self.grpc, self.tf, self.predict_pb2, self.service = grpc, tf, predict_pb2, prediction_service_pb2_grpc
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.failures, self.latencies, self.versions = [], [], set()
        self.threads = []
        for c in range(n):
            kind = "grpc" if grpc_only or c % 2 == 0 else "rest"
            self.threads.append(threading.Thread(target=self._run, args=(kind, grpc_port, rest_port, users, c)))

    def _run(self, kind, grpc_port, rest_port, users, seed):
        grpc, tf = self.grpc, self.tf
        rng = np.random.default_rng(seed)
        channel = grpc.insecure_channel(f"{HOST}:{grpc_port}")
        stub = self.service.PredictionServiceStub(channel)
        while not self.stop.is_set():
            user = f"u{rng.integers(users)}"
            started = time.perf_counter()
            try:
                if kind == "grpc":
                    request = self.predict_pb2.PredictRequest()
                    request.model_spec.name = "chaos"
                    request.inputs["user"].CopyFrom(tf.make_tensor_proto(np.array([user], object)))
                    version = stub.Predict(request, timeout=30).model_spec.version.value
                else:
                    status, error = http(rest_port, post(json.dumps({"inputs": {"user": [user]}}).encode()))
                    if status != 200:
                        raise RuntimeError(f"REST {status or error}")
                    version = None
                with self.lock:
                    self.latencies.append(time.perf_counter() - started)
                    if version:
                        self.versions.add(version)
            except (grpc.RpcError, RuntimeError) as e:
                with self.lock:
                    self.failures.append(str(e)[:200])
        channel.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def status_of(grpc_port, version):
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
    with grpc.insecure_channel(f"{HOST}:{grpc_port}") as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "chaos"
        answer = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    states = {v.version: get_model_status_pb2.ModelVersionStatus.State.Name(v.state)
              for v in answer.model_version_status}
    return states.get(version)


def copy_slowly(source, target, pause):
    """A version copied in place without a rename: directories first, then files, the variables last."""
    for directory, _, files in os.walk(source):
        os.makedirs(os.path.join(target, os.path.relpath(directory, source)), exist_ok=True)
    files = [os.path.join(d, f) for d, _, names in os.walk(source) for f in names]
    files.sort(key=lambda p: "variables" in p)
    for path in files:
        destination = os.path.join(target, os.path.relpath(path, source))
        with open(path, "rb") as src, open(destination, "wb") as dst:
            data = src.read()
            half = len(data) // 2
            dst.write(data[:half])
            dst.flush()
            time.sleep(pause)  # the server's poll sees the file half written
            dst.write(data[half:])


def post_large(port, body, timeout=300):
    """(status or None, error or None, seconds) of one POST whose body is sent separately (no copy of it)."""
    started = time.perf_counter()
    head = (f"POST /v1/models/chaos:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.sendall(head)
            conn.sendall(body)
            data = read_head(conn)
    except OSError as e:
        return None, type(e).__name__, time.perf_counter() - started
    if not data:
        return None, "closed without an answer", time.perf_counter() - started
    return int(data.split(b" ", 2)[1]), None, time.perf_counter() - started


def concurrent(port, n, body):
    return at_once(n, lambda: post_large(port, body))


def codes(results):
    counted = {}
    for status, error, _ in results:
        key = str(status or error)
        counted[key] = counted.get(key, 0) + 1
    return ", ".join(f"{n} × {key}" for key, n in sorted(counted.items()))


class Flood:
    """``n`` keep-alive connections, each sending a status request every ``interval`` seconds (first ones spread
    over the interval), reconnecting a second after the server closes or refuses one; one thread, a selector."""

    REQUEST = b"GET /v1/models/chaos HTTP/1.1\r\nHost: x\r\n\r\n"

    def __init__(self, port, n, interval, seed=0):
        self.port, self.n, self.interval = port, n, interval
        self.rng = np.random.default_rng(seed)
        self.stop, self.counts = threading.Event(), {"answered": 0, "refused": 0, "closed": 0, "connect_errors": 0}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.opened = threading.Event()

    def _connect(self, selector, conns, when):
        try:
            sock = socket.create_connection((HOST, self.port), timeout=10)
        except OSError:
            self.counts["connect_errors"] += 1
            return False
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        conns[sock] = {"buffer": b"", "due": when, "waiting": False}
        return True

    def _run(self):
        selector, conns, pending = selectors.DefaultSelector(), {}, []
        now = time.monotonic()
        for _ in range(self.n):
            self._connect(selector, conns, now + float(self.rng.uniform(0, self.interval)))
        self.opened.set()
        while not self.stop.is_set():
            now = time.monotonic()
            for when in [w for w in pending if w <= now]:
                pending.remove(when)
                if not self._connect(selector, conns, now):
                    pending.append(now + 1.0)
            for sock, state in list(conns.items()):
                if not state["waiting"] and state["due"] <= now:
                    try:
                        sock.send(self.REQUEST)
                        state["waiting"] = True
                    except OSError:
                        self._drop(selector, conns, sock, pending, now)
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                state = conns.get(sock)
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.counts["closed"] += 1
                    self._drop(selector, conns, sock, pending, now)
                    continue
                state["buffer"] += data
                head, sep, rest = state["buffer"].partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                if len(rest) < length:
                    continue
                status = int(head.split(b" ", 2)[1])
                state["buffer"], state["waiting"], state["due"] = rest[length:], False, now + self.interval
                if status == 503:
                    self.counts["refused"] += 1
                    self._drop(selector, conns, sock, pending, now)
                else:
                    self.counts["answered"] += 1
        for sock in list(conns):
            selector.unregister(sock)
            sock.close()

    def _drop(self, selector, conns, sock, pending, now):
        selector.unregister(sock)
        conns.pop(sock, None)
        sock.close()
        pending.append(now + 1.0)  # (the 503's Retry-After: 1)

    def __enter__(self):
        self.thread.start()
        self.opened.wait()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def main_scenarios(ctx, config, base, source, work):
    """Scenarios 1–4 against one server; their figures."""
    users, clients_n = ctx.opt("users"), ctx.opt("clients")
    figures = {}
    with start_server(config, work, "--max_request_bytes", MAX_REQUEST_BYTES, "--rest_request_timeout",
                      ctx.opt("request_timeout"), "--load_retry_interval_micros",
                      int(ctx.opt("retry_seconds") * 1e6)) as server:
        grpc_port, rest_port = server.grpc_port, server.rest_port
        body = json.dumps({"inputs": {"user": ["u1"], "k": 10}}).encode()
        # 1. bursts
        results = [r for _ in range(ctx.opt("bursts")) for r in burst(rest_port, ctx.opt("burst_size"), body)]
        figures["burst"] = {"requests": len(results), "200": sum(s == 200 for s, _ in results),
                            "503": sum(s == 503 for s, _ in results),
                            "resets": sum(e == "reset" for _, e in results),
                            "other": sum(e not in (None, "reset") or s not in (200, 503, None) for s, e in results)}
        ctx.log(f"bursts: {figures['burst']}")
        # 2. slow clients
        slow = []
        for _ in range(ctx.opt("slow_connections")):
            conn = socket.create_connection((HOST, rest_port), timeout=30)
            conn.sendall(b"POST /v1/models/chaos:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"in")
            slow.append(conn)
        opened = time.time()
        with Clients(grpc_port, rest_port, clients_n, users) as clients:
            time.sleep(ctx.opt("seconds"))
        answers = []
        for conn in slow:
            try:
                data = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                answers.append(data.split(b" ", 2)[1].decode() if data else "closed")
            except OSError as e:
                answers.append(type(e).__name__)
            conn.close()
        figures["slow"] = {"connections": len(slow), "408": answers.count("408"),
                           "closed_after_s": time.time() - opened, "other_requests": len(clients.latencies),
                           "other_failures": len(clients.failures),
                           "p99_ms": 1000 * float(np.percentile(clients.latencies, 99)) if clients.latencies else 0}
        ctx.log(f"slow clients: {figures['slow']}")
        # 3. oversized and malformed bodies
        bad = [b"{" + b" " * (MAX_REQUEST_BYTES + 10) + b"}", b"[" * 100000, b"{not json", b"\xff\xfe", b"null",
               b'{"signature_name": ["x"], "inputs": {"user": ["u1"]}}', b'{"instances": [{"user": "u1"}, 3]}',
               b'{"inputs": {"user": ["' + b"g" * 500000 + b'"]}}', b'{"inputs": {"user": ["u1"], "k": 1e999}}']
        statuses = [http(rest_port, post(b)) for b in bad]
        figures["bad"] = {"bodies": len(bad), "400": sum(s == 400 for s, _ in statuses),
                          "codes": sorted({str(s or e) for s, e in statuses})}
        ctx.log(f"bad bodies: {figures['bad']}")
        # 4. a version copied in non-atomically, a corrupt one, a hot swap — under the clients
        with Clients(grpc_port, rest_port, clients_n, users) as clients:
            time.sleep(1)
            copy_slowly(source, os.path.join(base, "2"), pause=ctx.opt("copy_pause"))
            partial_ok = wait_for(lambda: status_of(grpc_port, 2) == "AVAILABLE", 120)
            corrupt = os.path.join(work, "aside", "3")
            shutil.copytree(source, corrupt)
            with open(os.path.join(corrupt, "saved_model.pb"), "wb") as f:
                f.write(b"\x08\x01 not a SavedModel" * 50)
            os.rename(corrupt, os.path.join(base, "3"))
            corrupt_refused = wait_for(lambda: status_of(grpc_port, 3) == "END", 60)
            still_two = status_of(grpc_port, 2) == "AVAILABLE"
            shutil.rmtree(os.path.join(base, "3"))
            aside = os.path.join(work, "aside", "4")
            shutil.copytree(source, aside)
            os.rename(aside, os.path.join(base, "4"))
            swapped = wait_for(lambda: 4 in clients.versions, 120)
            time.sleep(1)
        figures["versions"] = {"partial_copy_served": partial_ok, "corrupt_refused": corrupt_refused,
                               "previous_kept": still_two, "swapped": swapped, "requests": len(clients.latencies),
                               "failures": len(clients.failures), "sample": clients.failures[:3]}
        ctx.log(f"versions: {figures['versions']}")
        figures["rss_mb"] = peak_rss_mb(server.pid)
    return figures


def batching_scenario(ctx, config, work):
    """Scenario 5: the same load against a server without and with --enable_batching."""
    batching = {}
    for enabled in ctx.opt("batching"):
        extra = ("--enable_batching", "--batching_max_batch_size", "32", "--batching_timeout_micros", "2000") \
            if enabled else ()
        with start_server(config, work, "--max_request_bytes", MAX_REQUEST_BYTES, *extra) as server:
            with Clients(server.grpc_port, server.rest_port, ctx.opt("batching_clients"), ctx.opt("users"),
                         grpc_only=True) as clients:
                time.sleep(ctx.opt("seconds"))
            lat = np.asarray(clients.latencies) * 1000
            name = "on" if enabled else "off"
            batching[name] = {"qps": len(lat) / ctx.opt("seconds"),
                              "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
                              "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
                              "failures": len(clients.failures), "rss_mb": peak_rss_mb(server.pid)}
            ctx.log(f"batching {name}: {batching[name]}")
    return batching


def run(ctx):
    with ctx.scratch("serve") as work:
        config, base, source = export(ctx, work)
        figures = main_scenarios(ctx, config, base, source, work)
        batching = batching_scenario(ctx, config, work)

    b, s, v, bad = figures["burst"], figures["slow"], figures["versions"], figures["bad"]
    checks = {"connection resets or other errors in the bursts": b["resets"] == 0 and b["other"] == 0,
              "a half request not answered 408": s["408"] == s["connections"],
              "a request failed beside the slow clients": s["other_failures"] == 0,
              "a bad body not answered 400": bad["400"] == bad["bodies"],
              "a request failed during the version changes": v["failures"] == 0,
              "the version copied in slowly never served": v["partial_copy_served"],
              "the corrupt version not refused": v["corrupt_refused"],
              "the previous version not kept": v["previous_kept"],
              "the hot swap never served": v["swapped"],
              "a batching request failed": all(r["failures"] == 0 for r in batching.values())}
    failed = [name for name, good in checks.items() if not good]
    if failed:
        ctx.failed = "chaos_serve: " + "; ".join(failed)
    rows = [
        (f"{ctx.opt('bursts')} burst{'s' if ctx.opt('bursts') > 1 else ''} of {ctx.opt('burst_size')} "
         "simultaneous REST requests",
         f"{b['200']} × 200, {b['503']} × 503 (overload), **{b['resets']} connection resets**, {b['other']} other "
         "errors"),
        (f"{s['connections']} connections sending half a request",
         f"{s['408']} of {s['connections']} answered 408 and closed after {s['closed_after_s']:.1f} s; meanwhile "
         f"{ctx.opt('clients')} clients: {s['other_requests']} requests, {s['other_failures']} failed, p99 "
         f"{s['p99_ms']:.0f} ms"),
        (f"oversized (> {MAX_REQUEST_BYTES // 2 ** 20} MiB) and malformed JSON bodies",
         f"{bad['400']} of {bad['bodies']} answered 400 (codes seen: {', '.join(bad['codes'])})"),
        ("version 2 copied in without a rename (files half written at first polls)",
         "loaded once complete (retried)" if v["partial_copy_served"] else "NOT served"),
        ("version 3 corrupt (garbage saved_model.pb)",
         "refused (END), version 2 kept serving" if v["corrupt_refused"] and v["previous_kept"] else "NOT as expected"),
        ("version 4 published atomically (hot swap)", "served" if v["swapped"] else "NOT served"),
        (f"requests failed during those three, under {ctx.opt('clients')} clients (half gRPC, half REST)",
         f"**{v['failures']}** of {v['requests'] + v['failures']}"),
        ("peak server RSS (VmHWM)", f"{figures['rss_mb']:.0f} MB"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    batching_table = "\n".join(f"| {name} | {r['qps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['failures']} | "
                               f"{r['rss_mb']:.0f} |" for name, r in batching.items())
    limits = serve_defaults()
    verdict = "all checks passed" if not failed else f"**FAILED** ({'; '.join(failed)})"
    return "\n".join([
        "## Chaos: `tfvrec serve` under bursts, slow clients, bad bodies and bad versions", "",
        f"A {ctx.opt('items'):,}-item brute-force export (d=32, {ctx.opt('users'):,} known users) served by "
        f"`tfvrec serve` (REST front end: asyncio + h11, default limits: backlog {limits['rest_backlog']}, "
        f"{limits['rest_max_connections']} connections, {limits['rest_workers']} workers + {limits['rest_queue']} "
        f"queued, {limits['rest_max_inflight_bytes'] // 2 ** 20} MiB of bodies in flight; here requests up to "
        f"{MAX_REQUEST_BYTES // 2 ** 20} MiB and a request timeout of {ctx.opt('request_timeout'):g} s), all on "
        f"127.0.0.1. The slow clients' phase lasts {ctx.opt('seconds'):g} s; the version copied in slowly pauses "
        f"{ctx.opt('copy_pause'):g} s in the middle of each file.", "",
        "| scenario | result |", "| --- | --- |", table, "",
        f"Request batching, {ctx.opt('batching_clients')} gRPC clients for {ctx.opt('seconds'):g} s each (one user "
        "per request, K=10):", "",
        "| `--enable_batching` | QPS | p50 ms | p99 ms | failed | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |", batching_table, "",
        "Batching joins up to 32 concurrent requests (waiting at most 2 ms) into one call of the signature; on 2 "
        "shared cores its gain is bounded by how much of a request's time is per-call overhead. "
        f"Result: {verdict}."])


# -- chaos_serve_hostile --------------------------------------------------------------------------------

def hostile_limits(ctx):
    """The REST limits of the hostile servers: ``{flag: value}`` (the server's defaults at full size)."""
    return {"rest_max_connections": ctx.opt("flood_connections"),
            "rest_max_inflight_bytes": ctx.opt("inflight_mib") * 2 ** 20,
            "max_request_bytes": (ctx.opt("body_mib") + 1) * 2 ** 20}


def hostile_server(ctx, config, work):
    flags = [a for flag, value in hostile_limits(ctx).items() for a in (f"--{flag}", value)]
    return start_server(config, work, *flags)


def large_bodies(ctx, config, work):
    """Scenario 6: what concurrent large bodies, and sequential ones, do to the server's memory."""
    size, n_users = ctx.opt("body_mib") * 2 ** 20, ctx.opt("users")
    short = ('{"inputs": {"user": [' + ",".join(f'"u{n % n_users}"' for n in range(size // 8)) + ']}}').encode()
    string = ctx.opt("string_kib") * 2 ** 10
    long_value = "x" * (string - 16)
    long = json.dumps({"inputs": {"user": [long_value] * (size // string)}}).encode()
    n = ctx.opt("concurrent")
    figures = {"short_mib": len(short) / 2 ** 20, "long_mib": len(long) / 2 ** 20}
    with hostile_server(ctx, config, work) as server:
        status, error = http(server.rest_port, post(json.dumps({"inputs": {"user": ["u1"], "k": 10}}).encode()))
        if status != 200:
            raise RuntimeError(f"the server did not answer a plain request ({status or error})")
        time.sleep(1)
        figures["base"] = rss_mb(server.pid)
        for name, body in (("short", short), ("long", long)):
            with RssSampler(server.pid) as sampler:
                results = concurrent(server.rest_port, n, body)
            time.sleep(2)
            figures[name] = {"codes": codes(results), "peak": sampler.peak, "after": rss_mb(server.pid),
                             "seconds": max(r[2] for r in results)}
            ctx.log(f"{n} concurrent bodies of {name} strings: {figures[name]}")
        after, results = [], []
        with RssSampler(server.pid) as sampler:
            for _ in range(ctx.opt("sequential")):
                results.append(post_large(server.rest_port, long))
                after.append(rss_mb(server.pid))
        figures["sequential"] = {"codes": codes(results), "after": after, "peak": sampler.peak}
        ctx.log(f"sequential bodies: {figures['sequential']}")
        figures["hwm"] = peak_rss_mb(server.pid)
    return figures


def keep_alive_flood(ctx, config, work):
    """Scenario 7: the whole connection table held by keep-alive clients; new clients keep arriving."""
    n, interval, seconds = ctx.opt("flood_connections"), ctx.opt("flood_interval"), ctx.opt("flood_seconds")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    body = post(json.dumps({"inputs": {"user": ["u1"], "k": 10}}).encode())
    figures = {"connections": n, "interval": interval, "seconds": seconds}
    with hostile_server(ctx, config, work) as server:
        with RssSampler(server.pid) as sampler, Flood(server.rest_port, n, interval, ctx.opt("seed")) as flood:
            time.sleep(min(interval, 5))  # (the table full, its connections between requests)
            answers, started = [], time.time()
            while time.time() - started < seconds:
                t0 = time.perf_counter()
                status, error = http(server.rest_port, body)
                answers.append((status or error, time.perf_counter() - t0))
                time.sleep(0.25)
        times = np.array([t for _, t in answers]) * 1000
        figures.update(new=len(answers), served=sum(s == 200 for s, _ in answers),
                       codes=sorted({str(s) for s, _ in answers}), p50=float(np.percentile(times, 50)),
                       p99=float(np.percentile(times, 99)), max=float(times.max()), flood=dict(flood.counts),
                       peak=sampler.peak)
    ctx.log(f"keep-alive flood: {figures}")
    return figures


def run_hostile(ctx):
    with ctx.scratch("hostile") as work:
        config, _, _ = export(ctx, work)
        big, flood = large_bodies(ctx, config, work), keep_alive_flood(ctx, config, work)
    seq = big["sequential"]
    n, budget_mib = ctx.opt("concurrent"), ctx.opt("inflight_mib")
    rows = [
        (f"{n} concurrent {big['short_mib']:.0f} MiB bodies of short user ids (each ~23× once decoded)",
         f"{big['short']['codes']}; server RSS {big['base']:.0f} MB → peak {big['short']['peak']:.0f} MB "
         f"(**+{big['short']['peak'] - big['base']:.0f} MB**), {big['short']['after']:.0f} MB 2 s after"),
        (f"{n} concurrent {big['long_mib']:.0f} MiB bodies of {ctx.opt('string_kib')} KiB strings (decodable a few "
         "at a time)",
         f"{big['long']['codes']}; peak {big['long']['peak']:.0f} MB (**+{big['long']['peak'] - big['base']:.0f} "
         f"MB**), {big['long']['after']:.0f} MB 2 s after"),
        (f"{len(seq['after'])} sequential {big['long_mib']:.0f} MiB bodies of {ctx.opt('string_kib')} KiB strings "
         f"({seq['codes']})",
         f"RSS after every fifth: {', '.join(f'{r:.0f}' for r in seq['after'][4::5])} MB; peak {seq['peak']:.0f} MB"),
        (f"{flood['connections']:,} keep-alive connections, one request each every {flood['interval']:g} s "
         f"(reconnecting after 1 s when closed)",
         f"{flood['flood']['answered']:,} flood requests answered, {flood['flood']['closed']:,} idle flood "
         f"connections closed to make room, {flood['flood']['refused']:,} refused (503)"),
        (f"meanwhile a new client every 0.25 s ({flood['new']} in {flood['seconds']:g} s)",
         f"**{flood['served']} of {flood['new']} served** (codes: {', '.join(flood['codes'])}); time to answer "
         f"p50 {flood['p50']:.0f} ms, p99 {flood['p99']:.0f} ms, max {flood['max']:.0f} ms; server peak RSS "
         f"{flood['peak']:.0f} MB"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    # Resident memory within the budget plus a fixed overhead (128 MB); no pile-up: the second half of the
    # sequential requests adds little; every new client served.
    budget_ok = max(big["short"]["peak"], big["long"]["peak"]) - big["base"] < budget_mib * 1.048576 + 128
    half = len(seq["after"]) // 2
    checks = {"resident memory over the in-flight budget plus 128 MB": budget_ok,
              "sequential bodies piled up (64 MB or more over the second half)":
                  seq["after"][-1] - seq["after"][half] < 64,
              "a new client not served during the flood": flood["served"] == flood["new"]}
    failed = [name for name, good in checks.items() if not good]
    if failed:
        ctx.failed = "chaos_serve_hostile: " + "; ".join(failed)
    limits, defaults = hostile_limits(ctx), serve_defaults()
    whose = "the server's defaults" if all(defaults[k] == v for k, v in limits.items()) else \
        "smaller than the server's defaults, for toy sizes"
    result = (f"resident memory within the budget (+{budget_mib} MiB) plus a fixed overhead, no pile-up, every new "
              "client served") if not failed else f"**FAILED** ({'; '.join(failed)})"
    return "\n".join([
        "## Chaos: `tfvrec serve` against large bodies and a keep-alive flood (issue 30)", "",
        f"A {ctx.opt('items'):,}-item brute-force export (d=32, {ctx.opt('users'):,} known users), served by "
        f"`tfvrec serve` with the REST limits {limits['rest_max_connections']:,} connections, "
        f"{defaults['rest_workers']} workers + {defaults['rest_queue']} queued, {budget_mib} MiB in flight, "
        f"{limits['max_request_bytes'] // 2 ** 20} MiB per request ({whose}), a fresh server for each part, all on "
        "127.0.0.1. The in-flight budget counts the bodies, the memory decoding each will take (an upper bound "
        "reserved before parsing) and the answers being sent. Before issue 30, 16 concurrent 15 MiB bodies took the "
        "server from 1.2 to 4.5 GB and sequential ones piled up to 3.9 GB; a keep-alive flood kept every new client "
        "at 503.", "",
        "| scenario | result |", "| --- | --- |", table, "",
        f"Result: {result}."])


SECTIONS = [
    Section(name="chaos_serve", run=run, paths=PATHS, make="chaos-serve",
            title="Chaos: `tfvrec serve` under bursts, slow clients, bad bodies, bad versions; batching on and off",
            options={"items": 20_000, "users": 5_000, "seconds": 6.0, "bursts": 3, "burst_size": 200,
                     "slow_connections": 300, "clients": 8, "request_timeout": 5.0, "copy_pause": 1.5,
                     "retry_seconds": 2.0, "batching": [False, True], "batching_clients": 16, "seed": 0},
            quick={"items": 2_000, "users": 200, "seconds": 1.5, "bursts": 1, "burst_size": 20,
                   "slow_connections": 10, "clients": 4, "request_timeout": 2.0, "copy_pause": 0.6,
                   "retry_seconds": 1.0, "batching": [True], "batching_clients": 4}),
    Section(name="chaos_serve_hostile", run=run_hostile, paths=PATHS, make="chaos-serve",
            title="Chaos: `tfvrec serve` against large bodies and a keep-alive flood (its memory, new clients served)",
            options={"items": 20_000, "users": 5_000, "body_mib": 15, "string_kib": 1024, "concurrent": 16,
                     "sequential": 30, "inflight_mib": 256, "flood_connections": 1000, "flood_interval": 10.0,
                     "flood_seconds": 20.0, "seed": 0},
            quick={"items": 2_000, "users": 200, "body_mib": 2, "string_kib": 256, "concurrent": 4,
                   "sequential": 5, "inflight_mib": 16, "flood_connections": 50, "flood_interval": 1.0,
                   "flood_seconds": 2.0}),
]
