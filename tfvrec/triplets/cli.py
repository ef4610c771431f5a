"""``tfvrec triplets``: write a model's training triplets as sharded TFRecords (`tfvrec.triplets`).

Its arguments; the work is `tfvrec.triplets.generate.run_cli`, named by reference (``tfvrec --help`` imports
no TensorFlow)."""


def register_cli(subparsers):
    p = subparsers.add_parser(
        "triplets", help="write a model's training triplets (CuratorNet's D_S, CDL's epochs) as sharded TFRecords",
        description="Write the training triplets the trainer would sample for CONFIG as sharded TFRecords "
                    "(triplets-*-of-*.tfrecord.gz) plus a manifest (triplets.json); train on them with "
                    "--set model.<name>.triplets_path=DIR (docs/scale.md).")
    p.add_argument("--config", required=True, help="the training config (a YAML file or a shipped config's name)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, as for tfvrec train (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the records (an older set there is replaced)")
    p.add_argument("--runner", default="local", metavar="RUNNER",
                   help="'local' (in process; default), 'beam' (Apache Beam's DirectRunner) or a Beam runner's name "
                        "(DataflowRunner, FlinkRunner, ...)")
    p.add_argument("--num_shards", "--num-shards", dest="num_shards", type=int, default=4, metavar="N",
                   help="output shards (default 4)")
    p.add_argument("--beam-arg", "--beam_arg", dest="beam_arg", action="append", default=[], metavar="ARG",
                   help="a Beam pipeline option, repeatable, e.g. --beam-arg=--direct_num_workers=2")
    p.set_defaults(func="tfvrec.triplets.generate:run_cli")
    return p
