"""``tfvrec export``, ``tfvrec index`` and ``tfvrec serve`` (see ``export/README.md``)."""
import math
import os
import shutil
import signal
import sys
import threading

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


def _export(args):
    from tfvrec.serving.export import ExportError, export_run, export_shards
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


def _query(args):
    """``tfvrec query``: a serving_default request to TF Serving (or tfvrec serve), sharded or not."""
    import json

    from tfvrec.serving import sharded
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


def _index(args):
    from tfvrec.serving.export import ExportError, export_run
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
    from tfvrec.serving.model_config import existing_versions, export_metadata, read_model_config
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


def _serve(args):
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

    from absl import logging
    from tfvrec.serving import server as server_lib
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
    rest_text = f", REST http://{args.host}:{rest_port}" if rest_port else ""
    print(f"tfvrec serve: gRPC {args.host}:{grpc_port}{rest_text}; {models}", flush=True)

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


def _export_arguments(p, index_command=False):
    p.add_argument("--run", required=True, help="trained run directory (runtime.model_dir)")
    p.add_argument("--out", required=True, metavar="export/models/NAME",
                   help="model base path; its last component is the served model name")
    if index_command:
        p.add_argument("--items", required=True, metavar="FEATURES.npz",
                       help="feature file of the items to (re-)embed (docs/data_format.md)")
        p.add_argument("--replace", action="store_true",
                       help="the catalogue becomes exactly these items (default: training items + these)")
    kept = " (default: the previous version's)" if index_command else ""
    p.add_argument("--version", type=int, help="version number (default: latest existing + 1)")
    p.add_argument("--index", choices=("brute_force", "scann"), help="override export.index" + kept)
    p.add_argument("--max_k", type=int, help="override export.max_k" + kept)
    p.add_argument("--set", action="append", default=[], metavar="export.KEY=VALUE",
                   help="override an export.* config key, e.g. --set export.default_k=20 (repeatable)")
    p.add_argument("--model_config_file", help="model_config_list to update (default: <out>/../../models.config)")
    p.add_argument("--no_model_config", action="store_true", help="do not write a models.config")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="export a run that has not finished training (its best checkpoint so far; recorded in the "
                        "version's assets.extra/tfvrec_export.json)")


def register_cli(subparsers):
    from tfvrec.serving import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES

    p = subparsers.add_parser("export", help="export a trained run as a TF Serving SavedModel version")
    _export_arguments(p)
    p.set_defaults(func=_export)

    p.add_argument("--shards", type=int, default=0, metavar="S",
                   help="export S models <out>-0 .. <out>-(S-1), each indexing one shard of the catalogue "
                        "(tfvrec query --shards S merges their top-K)")

    p = subparsers.add_parser("query", help="ask a running TF Serving / tfvrec serve for a top-K (merging "
                                            "sharded models)")
    p.add_argument("--target", default="127.0.0.1:8500", help="gRPC host:port (default 127.0.0.1:8500)")
    p.add_argument("--model", required=True, help="model name (with --shards: the base name of <name>-s)")
    p.add_argument("--shards", type=int, default=0, metavar="S", help="query <model>-0 .. <model>-(S-1), merge")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a known user id")
    who.add_argument("--items", nargs="+", metavar="ID", help="cold start: liked item ids (content models)")
    p.add_argument("-k", "--k", type=int, default=10)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per shard request")
    p.set_defaults(func=_query)

    p = subparsers.add_parser("index", help="embed new items with a content model and export a new version")
    _export_arguments(p, index_command=True)
    p.set_defaults(func=_index)

    p = subparsers.add_parser("serve", help="serve exports over TF Serving's gRPC and REST APIs")
    p.add_argument("--model_config_file", help="model_config_list text proto (tfvrec export writes one)")
    p.add_argument("--model_name", help="serve one model: its name (with --model_base_path)")
    p.add_argument("--model_base_path", help="serve one model: the directory holding its versions")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    p.add_argument("--rest_port", type=int, default=None, help="REST port (default: no REST; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1, local only)")
    p.add_argument("--backend", choices=("tfvrec", "tfserving"), default="tfvrec",
                   help="tfserving: exec tensorflow_model_server from the PATH with the same models")
    p.add_argument("--poll_seconds", type=float, default=1.0, help="how often base paths are polled")
    p.add_argument("--max_request_bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    p.add_argument("--max_batch_size", type=int, default=DEFAULT_MAX_BATCH_SIZE, help="most rows per request")
    p.add_argument("--grpc_threads", type=int, default=16, help="gRPC worker threads (4x as many calls may queue)")
    p.add_argument("--max_num_load_retries", type=int, default=5,
                   help="retries of a version that failed to load (TF Serving's flag; default 5)")
    p.add_argument("--load_retry_interval_micros", type=int, default=60_000_000,
                   help="between those retries (TF Serving's flag; default 1 minute); a version whose files changed "
                        "and settled is retried at the next poll")
    rest = p.add_argument_group("REST limits")
    rest.add_argument("--rest_backlog", type=int, default=1024, help="listen backlog (connections waiting to be "
                                                                     "accepted)")
    rest.add_argument("--rest_max_connections", type=int, default=1000,
                      help="open connections; when all are open, the one idle the longest is closed to make room "
                           "(a keep-alive one between requests, or one silent for 1 s), else 503 and closed")
    rest.add_argument("--rest_workers", type=int, default=8, help="requests answered at once")
    rest.add_argument("--rest_queue", type=int, default=256, help="requests waiting for a worker; more get 503")
    rest.add_argument("--rest_max_inflight_bytes", type=int, default=256 * 2 ** 20,
                      help="memory requests hold at once: their bodies as they arrive, what decoding each will "
                           "take (reserved before it is decoded) and the answers being sent; a request past it gets "
                           "503, one that alone decodes to more 413")
    rest.add_argument("--rest_request_timeout", type=float, default=30.0,
                      help="seconds a request may take to arrive (headers and body); then 408 and close")
    rest.add_argument("--rest_idle_timeout", type=float, default=60.0, help="seconds a keep-alive connection may "
                                                                           "idle")
    batching = p.add_argument_group("request batching (TF Serving's --enable_batching)")
    batching.add_argument("--enable_batching", action="store_true",
                          help="join concurrent requests to a signature into batches")
    batching.add_argument("--batching_max_batch_size", type=int, default=32, help="rows per batch")
    batching.add_argument("--batching_timeout_micros", type=int, default=1000,
                          help="how long a batch waits to fill")
    batching.add_argument("--batching_max_enqueued_batches", type=int, default=100,
                          help="batches waiting for a thread; a request needing one more gets UNAVAILABLE")
    batching.add_argument("--batching_num_batch_threads", type=int, default=4, help="threads running batches")
    p.set_defaults(func=_serve)
