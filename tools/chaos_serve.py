"""Chaos test of ``tfvrec serve`` (issue 16): bursts, slow clients, bad bodies, partial and corrupt versions,
a hot swap under load, and request batching — on 127.0.0.1 only, bounded in count and time.

Builds a 20k-item retrieval export through the real export path (synthetic vectors, d=32,
5k known users), starts ``tfvrec serve`` in its own process (gRPC and REST on loopback)
and runs, in order:

1. bursts: 3 × 200 simultaneous REST requests (one connection each, opened at once);
2. slow clients: 300 connections that send half a request and stop, while 8 clients keep
   sending requests; the server must answer the half requests 408 and the others 200;
3. oversized bodies (over ``--max_request_bytes``) and malformed JSON bodies: all 400;
4. a version copied in without an atomic rename (file by file, the variables last and
   slowly), then a corrupt version, then a hot swap (atomic rename) — each under 8
   clients (4 gRPC, 4 REST), which must see no failed request;
5. request batching: 16 gRPC clients for a few seconds against the server without and
   with ``--enable_batching`` (QPS and latency).

Records connection resets, status codes, failures, peak server RSS (VmHWM) and writes
``docs/benchmarks.md`` (section ``chaos_serve``). Then the hostile scenarios of issue 30
(section ``chaos_serve_hostile``), each against a fresh server with the default limits:

6. large bodies: 16 concurrent 15 MiB REST bodies of short strings (each ~23× that once
   decoded), then 16 concurrent 15 MiB bodies of long strings (decodable within the budget a
   few at a time), then ``--sequential`` ones; the server's resident memory sampled every 10 ms;
7. keep-alive flood: 1,000 keep-alive connections (the whole connection table), each sending
   a request every ``--flood-interval`` seconds and reconnecting after a second when closed or
   refused, while a new client arrives every 0.25 s: its status and time to answer.

    .venv/bin/python tools/chaos_serve.py
    .venv/bin/python tools/chaos_serve.py --seconds 3 --no-write
    .venv/bin/python tools/chaos_serve.py --hostile-only      (6 and 7 only)
"""
import argparse
import json
import os
import re
import resource
import select
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfvrec  # noqa: E402,F401

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from tfvrec import benchmark_report  # noqa: E402
from tfvrec.config import ExportConfig  # noqa: E402
from tfvrec.serving import module as module_lib, parts as parts_lib, versions  # noqa: E402
from tfvrec.serving.model_config import update_models_config  # noqa: E402

SECTION = "chaos_serve"
SECTION_HOSTILE = "chaos_serve_hostile"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_REQUEST_BYTES = 1 << 20
HOST = "127.0.0.1"


def build(base, args):
    rng = np.random.default_rng(args.seed)
    items = rng.normal(size=(args.items, 32)).astype(np.float32)
    users = rng.normal(size=(args.users, 32)).astype(np.float32)
    seen = [rng.choice(args.items, 10, replace=False) for _ in range(args.users)]
    parts = parts_lib.ServingParts(model_name="chaos", item_ids=np.array([f"i{n}" for n in range(args.items)]),
                                   item_vectors=items, user_ids=np.array([f"u{n}" for n in range(args.users)]),
                                   user_vectors=users, seen=seen)
    module = module_lib.ServingModule(parts, ExportConfig(index="brute_force", max_k=100, default_k=10))
    return versions.write_version(module, base, metadata={"benchmark": "chaos_serve"})[1]


def start_server(config_file, log_path, *extra):
    log = open(log_path, "a")
    proc = subprocess.Popen([sys.executable, "-m", "tfvrec", "serve", "--model_config_file", config_file,
                             "--port", "0", "--rest_port", "0", "--poll_seconds", "0.5",
                             "--max_request_bytes", str(MAX_REQUEST_BYTES), "--rest_request_timeout", "5",
                             "--load_retry_interval_micros", "2000000", *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        if select.select([proc.stdout], [], [], 1.0)[0]:
            found = re.search(r"gRPC 127\.0\.0\.1:(\d+), REST http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
            if found:
                return proc, int(found.group(1)), int(found.group(2))
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"server did not start; see {log_path}")


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


def http(port, request, timeout=60):
    """(status or None, error or None) of one raw request on its own connection."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
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


def burst(port, n, body):
    barrier = threading.Barrier(n)
    results, lock = [], threading.Lock()

    def client():
        barrier.wait()
        result = http(port, post(body))
        with lock:
            results.append(result)
    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class Clients:
    """``n`` clients (half gRPC, half REST unless ``grpc_only``) sending back-to-back requests."""

    def __init__(self, grpc_port, rest_port, n, users, grpc_only=False):
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.failures, self.latencies, self.versions = [], [], set()
        self.threads = []
        for c in range(n):
            kind = "grpc" if grpc_only or c % 2 == 0 else "rest"
            self.threads.append(threading.Thread(target=self._run, args=(kind, grpc_port, rest_port, users, c)))

    def _run(self, kind, grpc_port, rest_port, users, seed):
        rng = np.random.default_rng(seed)
        channel = grpc.insecure_channel(f"{HOST}:{grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while not self.stop.is_set():
            user = f"u{rng.integers(users)}"
            started = time.perf_counter()
            try:
                if kind == "grpc":
                    request = predict_pb2.PredictRequest()
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
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return None, type(e).__name__, time.perf_counter() - started
    if not data:
        return None, "closed without an answer", time.perf_counter() - started
    return int(data.split(b" ", 2)[1]), None, time.perf_counter() - started


def concurrent(port, n, body):
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(n)

    def client():
        barrier.wait()
        result = post_large(port, body)
        with lock:
            results.append(result)
    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def codes(results):
    counted = {}
    for status, error, _ in results:
        key = str(status or error)
        counted[key] = counted.get(key, 0) + 1
    return ", ".join(f"{n} × {key}" for key, n in sorted(counted.items()))


def large_bodies(config, log, args):
    """Scenario 6: what 16 concurrent 15 MiB bodies, and 10 sequential ones, do to the server's memory."""
    size = 15 * 2 ** 20
    short = ('{"inputs": {"user": [' + ",".join(f'"u{n % args.users}"' for n in range(size // 8)) + ']}}').encode()
    long_value = "x" * (2 ** 20 - 16)
    long = json.dumps({"inputs": {"user": [long_value] * 15}}).encode()
    proc, _, rest_port = start_server(config, log, "--max_request_bytes", str(16 * 2 ** 20))
    figures = {"budget_mb": 256 * 2 ** 20 / 1e6, "short_mib": len(short) / 2 ** 20, "long_mib": len(long) / 2 ** 20}
    try:
        assert http(rest_port, post(json.dumps({"inputs": {"user": ["u1"], "k": 10}}).encode()))[0] == 200
        time.sleep(1)
        figures["base"] = rss_mb(proc.pid)
        for name, body in (("short", short), ("long", long)):
            with RssSampler(proc.pid) as sampler:
                results = concurrent(rest_port, 16, body)
            time.sleep(2)
            figures[name] = {"codes": codes(results), "peak": sampler.peak, "after": rss_mb(proc.pid),
                             "seconds": max(r[2] for r in results)}
        after = []
        with RssSampler(proc.pid) as sampler:
            for _ in range(args.sequential):
                results = [post_large(rest_port, long)]
                after.append(rss_mb(proc.pid))
        figures["sequential"] = {"codes": codes(results), "after": after, "peak": sampler.peak}
        figures["hwm"] = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return figures


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


def keep_alive_flood(config, log, args):
    """Scenario 7: the whole connection table held by keep-alive clients; new clients keep arriving."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    proc, _, rest_port = start_server(config, log)
    body = post(json.dumps({"inputs": {"user": ["u1"], "k": 10}}).encode())
    figures = {"connections": 1000, "interval": args.flood_interval}
    try:
        with RssSampler(proc.pid) as sampler, Flood(rest_port, 1000, args.flood_interval, args.seed) as flood:
            time.sleep(min(args.flood_interval, 5))  # (the table full, its connections between requests)
            answers, started = [], time.time()
            while time.time() - started < args.flood_seconds:
                t0 = time.perf_counter()
                status, error = http(rest_port, body)
                answers.append((status or error, time.perf_counter() - t0))
                time.sleep(0.25)
        seconds = np.array([t for _, t in answers]) * 1000
        figures.update(new=len(answers), served=sum(s == 200 for s, _ in answers),
                       codes=sorted({str(s) for s, _ in answers}), p50=float(np.percentile(seconds, 50)),
                       p99=float(np.percentile(seconds, 99)), max=float(seconds.max()), flood=dict(flood.counts),
                       peak=sampler.peak)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return figures


def hostile_report(figures, args):
    big, flood = figures["large"], figures["flood"]
    seq = big["sequential"]
    rows = [
        (f"16 concurrent {big['short_mib']:.0f} MiB bodies of short user ids (each ~23× once decoded)",
         f"{big['short']['codes']}; server RSS {big['base']:.0f} MB → peak {big['short']['peak']:.0f} MB "
         f"(**+{big['short']['peak'] - big['base']:.0f} MB**), {big['short']['after']:.0f} MB 2 s after"),
        (f"16 concurrent {big['long_mib']:.0f} MiB bodies of 1 MiB strings (decodable a few at a time)",
         f"{big['long']['codes']}; peak {big['long']['peak']:.0f} MB (**+{big['long']['peak'] - big['base']:.0f} "
         f"MB**), {big['long']['after']:.0f} MB 2 s after"),
        (f"{len(seq['after'])} sequential {big['long_mib']:.0f} MiB bodies of 1 MiB strings ({seq['codes']})",
         f"RSS after every fifth: {', '.join(f'{r:.0f}' for r in seq['after'][4::5])} MB; peak {seq['peak']:.0f} MB"),
        (f"{flood['connections']:,} keep-alive connections, one request each every {flood['interval']:g} s "
         f"(reconnecting after 1 s when closed)",
         f"{flood['flood']['answered']:,} flood requests answered, {flood['flood']['closed']:,} idle flood "
         f"connections closed to make room, {flood['flood']['refused']:,} refused (503)"),
        (f"meanwhile a new client every 0.25 s ({flood['new']} in {args.flood_seconds:g} s)",
         f"**{flood['served']} of {flood['new']} served** (codes: {', '.join(flood['codes'])}); time to answer "
         f"p50 {flood['p50']:.0f} ms, p99 {flood['p99']:.0f} ms, max {flood['max']:.0f} ms; server peak RSS "
         f"{flood['peak']:.0f} MB"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    budget_ok = max(big["short"]["peak"], big["long"]["peak"]) - big["base"] < 256 * 1.048576 + 128
    half = len(seq["after"]) // 2  # (no pile-up: the second half of the requests adds little)
    ok = flood["served"] == flood["new"] and budget_ok and seq["after"][-1] - seq["after"][half] < 64
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return f"""## Chaos: `tfvrec serve` against large bodies and a keep-alive flood (issue 30)

Command: `python tools/chaos_serve.py --hostile-only` at commit {commit} — the same export, served by
`tfvrec serve` with the default REST limits (1000 connections, 8 workers + 256 queued, 256 MiB in flight, 16 MiB
per request), a fresh server for each part, all on 127.0.0.1. The in-flight budget counts the bodies, the memory
decoding each will take (an upper bound reserved before parsing) and the answers being sent. Before issue 30,
16 concurrent 15 MiB bodies took the server from 1.2 to 4.5 GB and sequential ones piled up to 3.9 GB; a
keep-alive flood kept every new client at 503.

| scenario | result |
| --- | --- |
{table}

Result: {"resident memory within the budget (+256 MiB) plus a fixed overhead, no pile-up, every new client served"
          if ok else "**FAILED** (see above)"}."""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=6.0, help="per load phase")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--hostile-only", action="store_true", help="only the large-body and keep-alive-flood "
                                                                    "scenarios (section chaos_serve_hostile)")
    parser.add_argument("--flood-interval", type=float, default=10.0,
                        help="seconds between two requests of one keep-alive flood connection")
    parser.add_argument("--flood-seconds", type=float, default=20.0, help="how long new clients arrive")
    parser.add_argument("--sequential", type=int, default=30, help="sequential large bodies")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfvrec-chaos-serve-")
    base = os.path.join(work, "models", "chaos")
    source = build(base, args)
    config = update_models_config(os.path.join(work, "models.config"), "chaos", base)
    log = os.path.join(work, "serve.log")
    if args.hostile_only:
        return hostile(config, log, work, args)
    proc, grpc_port, rest_port = start_server(config, log)
    figures = {}
    try:
        body = json.dumps({"inputs": {"user": ["u1"], "k": 10}}).encode()
        # 1. bursts
        results = [r for _ in range(3) for r in burst(rest_port, 200, body)]
        figures["burst"] = {"requests": len(results), "200": sum(s == 200 for s, _ in results),
                            "503": sum(s == 503 for s, _ in results),
                            "resets": sum(e == "reset" for _, e in results),
                            "other": sum(e not in (None, "reset") or s not in (200, 503, None) for s, e in results)}
        # 2. slow clients
        slow = []
        for _ in range(300):
            conn = socket.create_connection((HOST, rest_port), timeout=30)
            conn.sendall(b"POST /v1/models/chaos:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"in")
            slow.append(conn)
        opened = time.time()
        with Clients(grpc_port, rest_port, 8, args.users) as clients:
            time.sleep(args.seconds)
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
        # 3. oversized and malformed bodies
        bad = [b"{" + b" " * (MAX_REQUEST_BYTES + 10) + b"}", b"[" * 100000, b"{not json", b"\xff\xfe", b"null",
               b'{"signature_name": ["x"], "inputs": {"user": ["u1"]}}', b'{"instances": [{"user": "u1"}, 3]}',
               b'{"inputs": {"user": ["' + b"g" * 500000 + b'"]}}', b'{"inputs": {"user": ["u1"], "k": 1e999}}']
        statuses = [http(rest_port, post(b)) for b in bad]
        figures["bad"] = {"bodies": len(bad), "400": sum(s == 400 for s, _ in statuses),
                          "codes": sorted({str(s or e) for s, e in statuses})}
        # 4. a version copied in non-atomically, a corrupt one, a hot swap — under 8 clients
        with Clients(grpc_port, rest_port, 8, args.users) as clients:
            time.sleep(1)
            copy_slowly(source, os.path.join(base, "2"), pause=1.5)
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
        figures["rss_mb"] = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    # 5. batching: the same load against a server without and with --enable_batching
    batching = {}
    for name, extra in (("off", ()), ("on", ("--enable_batching", "--batching_max_batch_size", "32",
                                            "--batching_timeout_micros", "2000"))):
        proc, grpc_port, rest_port = start_server(config, log, *extra)
        try:
            with Clients(grpc_port, rest_port, 16, args.users, grpc_only=True) as clients:
                time.sleep(args.seconds)
            lat = np.asarray(clients.latencies) * 1000
            batching[name] = {"qps": len(lat) / args.seconds, "p50": float(np.percentile(lat, 50)),
                              "p99": float(np.percentile(lat, 99)), "failures": len(clients.failures),
                              "rss_mb": peak_rss_mb(proc.pid)}
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    b, s, v = figures["burst"], figures["slow"], figures["versions"]
    ok = (b["resets"] == 0 and b["other"] == 0 and s["408"] == s["connections"] and s["other_failures"] == 0
          and figures["bad"]["400"] == figures["bad"]["bodies"] and v["failures"] == 0 and v["partial_copy_served"]
          and v["corrupt_refused"] and v["previous_kept"] and v["swapped"])
    bad = figures["bad"]
    rows = [
        ("3 bursts of 200 simultaneous REST requests",
         f"{b['200']} × 200, {b['503']} × 503 (overload), **{b['resets']} connection resets**, {b['other']} other "
         "errors"),
        ("300 connections sending half a request",
         f"{s['408']} of {s['connections']} answered 408 and closed after {s['closed_after_s']:.1f} s; meanwhile 8 "
         f"clients: {s['other_requests']} requests, {s['other_failures']} failed, p99 {s['p99_ms']:.0f} ms"),
        (f"oversized (> {MAX_REQUEST_BYTES // 2 ** 20} MiB) and malformed JSON bodies",
         f"{bad['400']} of {bad['bodies']} answered 400 (codes seen: {', '.join(bad['codes'])})"),
        ("version 2 copied in without a rename (files half written at first polls)",
         "loaded once complete (retried)" if v["partial_copy_served"] else "NOT served"),
        ("version 3 corrupt (garbage saved_model.pb)",
         "refused (END), version 2 kept serving" if v["corrupt_refused"] and v["previous_kept"] else "NOT as expected"),
        ("version 4 published atomically (hot swap)", "served" if v["swapped"] else "NOT served"),
        ("requests failed during those three, under 8 clients (4 gRPC, 4 REST)",
         f"**{v['failures']}** of {v['requests']}"),
        ("peak server RSS (VmHWM)", f"{figures['rss_mb']:.0f} MB"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    batching_table = "\n".join(f"| {name} | {r['qps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['failures']} | "
                               f"{r['rss_mb']:.0f} |" for name, r in batching.items())
    verdict = "all checks passed" if ok else "**FAILED** (see above)"
    markdown = f"""## Chaos: `tfvrec serve` under bursts, slow clients, bad bodies and bad versions

Command: `python tools/chaos_serve.py` — a {args.items:,}-item brute-force export (d=32, {args.users:,} known users)
served by `tfvrec serve` (REST front end: asyncio + h11, default limits: backlog 1024, 1000 connections, 8 workers
+ 256 queued, 256 MiB of bodies in flight, request timeout here 5 s), all on 127.0.0.1.

| scenario | result |
| --- | --- |
{table}

Request batching, 16 gRPC clients for {args.seconds:g} s each (one user per request, K=10):

| `--enable_batching` | QPS | p50 ms | p99 ms | failed | peak RSS MB |
| --- | ---: | ---: | ---: | ---: | ---: |
{batching_table}

Batching joins up to 32 concurrent requests (waiting at most 2 ms) into one call of the signature; on 2 shared
cores its gain is bounded by how much of a request's time is per-call overhead. Result: {verdict}."""
    benchmark_report.publish(SECTION, markdown, write=not args.no_write)
    return max(0 if ok else 1, hostile(config, log, work, args))


def hostile(config, log, work, args):
    """Scenarios 6 and 7 (section chaos_serve_hostile)."""
    try:
        figures = {"large": large_bodies(config, log, args), "flood": keep_alive_flood(config, log, args)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    markdown = hostile_report(figures, args)
    benchmark_report.publish(SECTION_HOSTILE, markdown, write=not args.no_write)
    return 0 if "FAILED" not in markdown else 1


if __name__ == "__main__":
    sys.exit(main())
