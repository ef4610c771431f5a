"""The work of ``tfvrec export``, ``index``, ``query`` and ``serve`` (their arguments: `tfvrec.serving.cli`)."""
import json
import math
import os
import shutil
import signal
import sys
import threading

from absl import logging

from tfvrec.serving import server as server_lib
from tfvrec.serving.server import launch
from tfvrec.serving import sharded
from tfvrec.serving.export import ExportError, export_run, export_shards
from tfvrec.serving.model_config import existing_versions, export_metadata, read_model_config

EXIT_USAGE = 2
TF_SERVING_BINARY = "tensorflow_model_server"


def _fail(command, error):
    if os.environ.get("TFVREC_DEBUG"):
        raise error
    print(f"tfvrec {command}: error: {error}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _report(info):
    print(f"Exported {info['name']} version {info['version']} to {info['path']} "
          f"({info['bytes'] / 2 ** 20:.1f} MB; signatures: {', '.join(info['signatures'])}; "
          f"custom ops: {', '.join(info['custom_ops']) or 'none'})")
    if info["models_config"]:
        print(f"Model config: {info['models_config']}  (tfvrec serve --model_config_file {info['models_config']})")


def export(args):
    options = dict(version=args.version, index=args.index, max_k=args.max_k, sets=args.set,
                   models_config="" if args.no_model_config else args.model_config_file,
                   allow_unfinished=args.allow_unfinished)
    try:
        infos = export_shards(args.run, args.out, args.shards, **options) if args.shards else \
            [export_run(args.run, args.out, **options)]
    except ExportError as e:
        _fail("export", e)
    for info in infos:
        _report(info)


def query(args):
    """``tfvrec query``: a serving_default request to TF Serving (or tfvrec serve), sharded or not."""
    names = [f"{args.model}-{s}" for s in range(args.shards)] if args.shards else [args.model]
    query = {"user": [args.user]} if args.user else {"profile": [args.items]}
    try:
        answer = sharded.ShardedClient(sharded.grpc_shards(args.target, names, timeout=args.timeout)).recommend(
            k=args.k, **query)
    except Exception as error:  # a gRPC error: say it in one line
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else str(error)
        _fail("query", ValueError(f"{args.target} {names}: {code.name if code else type(error).__name__}: "
                                  f"{str(details)[:500]}"))
    rows = [{"item": i, "score": float(s)} for i, s in zip(answer["item_ids"][0], answer["scores"][0]) if i]
    print(json.dumps(rows, indent=1))


def index(args):
    try:
        info = export_run(args.run, args.out, version=args.version, index=args.index, max_k=args.max_k,
                          sets=args.set, models_config="" if args.no_model_config else args.model_config_file,
                          new_items_path=args.items, replace_items=args.replace,
                          allow_unfinished=args.allow_unfinished)
    except ExportError as e:
        _fail("index", e)
    _report(info)


def tf_serving_command(args, binary):
    """The ``tensorflow_model_server`` command line equivalent to a ``tfvrec serve`` one."""
    command = [binary, f"--port={args.port}"]
    if args.rest_port:
        command.append(f"--rest_api_port={args.rest_port}")
    if args.model_config_file:
        command.append(f"--model_config_file={os.path.abspath(args.model_config_file)}")
        command.append(f"--model_config_file_poll_wait_seconds={max(1, math.ceil(args.poll_seconds))}")
    else:
        command += [f"--model_name={args.model_name}", f"--model_base_path={os.path.abspath(args.model_base_path)}"]
    command.append(f"--file_system_poll_wait_seconds={max(1, math.ceil(args.poll_seconds))}")
    return command


def _scann_exports(args):
    """Names of configured models whose latest export uses ScaNN (stock TF Serving cannot load them)."""
    if args.model_config_file:
        models = [(c.name, c.base_path) for c in read_model_config(args.model_config_file).config]
    else:
        models = [(args.model_name, args.model_base_path)]
    found = []
    for name, base in models:
        versions = existing_versions(base)
        if versions and export_metadata(os.path.join(base, str(versions[-1]))).get("index") == "scann":
            found.append(name)
    return found


def serve(args):
    if not args.model_config_file and not (args.model_name and args.model_base_path):
        _fail("serve", ValueError("give --model_config_file, or --model_name and --model_base_path"))
    if args.model_config_file and not os.path.exists(args.model_config_file):
        _fail("serve", FileNotFoundError(f"{args.model_config_file}: model config file not found"))
    if args.backend == "tfserving":
        binary = shutil.which(TF_SERVING_BINARY)
        if binary is None:
            _fail("serve", FileNotFoundError(
                f"--backend tfserving: no {TF_SERVING_BINARY} on the PATH; install TF Serving (see export/README.md: "
                "apt repository or the tensorflow/serving Docker image) or use --backend tfvrec"))
        scann = _scann_exports(args)
        if scann:
            print(f"tfvrec serve: warning: {scann} use a ScaNN index; stock {TF_SERVING_BINARY} lacks the ScaNN "
                  "ops and will fail to load them (export with --index brute_force, or use a ScaNN build of "
                  "TF Serving)", file=sys.stderr)
        if args.host != "127.0.0.1":
            print(f"tfvrec serve: note: {TF_SERVING_BINARY} binds every interface; --host is not passed on",
                  file=sys.stderr)
        command = tf_serving_command(args, binary)
        print("tfvrec serve: exec " + " ".join(command), flush=True)
        os.execv(binary, command)

    try:
        batching = None
        if args.enable_batching:
            batching = dict(max_batch_size=args.batching_max_batch_size,
                            batch_timeout=args.batching_timeout_micros / 1e6,
                            max_enqueued_batches=args.batching_max_enqueued_batches,
                            num_batch_threads=args.batching_num_batch_threads)
        server = server_lib.ModelServer(args.model_config_file, args.model_name, args.model_base_path,
                                        poll_seconds=args.poll_seconds, max_request_bytes=args.max_request_bytes,
                                        max_batch_size=args.max_batch_size, max_load_retries=args.max_num_load_retries,
                                        load_retry_interval=args.load_retry_interval_micros / 1e6, batching=batching)
    except (ValueError, FileNotFoundError) as e:
        _fail("serve", e)
    server.poll_once()  # load what is there before accepting requests, as TF Serving does
    for name, manager in sorted(server.managers.items()):
        if not manager.versions():
            logging.warning("Model %s: no loadable version in %s yet; polling", name, manager.base_path)
    try:
        grpc_server, grpc_port = server_lib.start_grpc(server, args.host, args.port, threads=args.grpc_threads)
        rest, rest_port = (None, None)
        if args.rest_port is not None:
            rest, rest_port = server_lib.start_rest(
                server, args.host, args.rest_port, backlog=args.rest_backlog, max_connections=args.rest_max_connections,
                workers=args.rest_workers, queue=args.rest_queue, request_timeout=args.rest_request_timeout,
                idle_timeout=args.rest_idle_timeout, max_inflight_bytes=args.rest_max_inflight_bytes)
    except (OSError, ValueError) as e:
        _fail("serve", e)
    server.start_polling()
    models = "; ".join(f"{name} versions {m.versions()}" for name, m in sorted(server.managers.items()))
    print(launch.ready_line(args.host, grpc_port, rest_port, models), flush=True)  # what launch.start waits for

    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    if rest is not None:
        rest.shutdown()
    grpc_server.stop(grace=5).wait()
    if server.batcher is not None:
        server.batcher.stop()
    print("tfvrec serve: stopped", flush=True)
