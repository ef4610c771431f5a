"""``tfvrec export``, ``index``, ``query`` and ``serve``: their arguments (see ``export/README.md``).

The verbs' work is `tfvrec.serving.commands`, named here by reference and imported only when a
verb runs, so building the parser (``tfvrec --help``) imports no TensorFlow.
"""
from tfvrec.serving import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES

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
    p = subparsers.add_parser("export", help="export a trained run as a TF Serving SavedModel version")
    _export_arguments(p)
    p.set_defaults(func="tfvrec.serving.commands:export")

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
    p.set_defaults(func="tfvrec.serving.commands:query")

    p = subparsers.add_parser("index", help="embed new items with a content model and export a new version")
    _export_arguments(p, index_command=True)
    p.set_defaults(func="tfvrec.serving.commands:index")

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
    p.set_defaults(func="tfvrec.serving.commands:serve")
