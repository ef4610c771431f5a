"""``tfvrec`` command line: train, evaluate, data import|validate|synth, features.

Bad input (config or data) ends with one line naming the place and the reason,
never a traceback; ``TFVREC_DEBUG=1`` shows the traceback too.
"""
import argparse
import importlib
import os
import sys

import tfvrec  # noqa: F401  (selects tf-keras before TensorFlow is imported)


# The engine's modules that add sub-commands with ``register_cli(subparsers)`` (each sets
# ``func``); model packages add theirs through the registry (``ModelSpec.commands``).
COMMAND_MODULES = (
    "tfvrec.features.extract",  # tfvrec features
    "tfvrec.inference",  # tfvrec recommend
    "tfvrec.serving.cli",  # tfvrec export | serve | index
)


def _train(args):
    from tfvrec import config as config_lib
    from tfvrec.training import trainer
    config = config_lib.load_config(args.config, args.set)
    trainer.train(config)


def _evaluate(args):
    from tfvrec.data.dataset import read_interactions
    from tfvrec.training import trainer
    config, dataset, model = trainer.load_run(args.run)
    if args.repeats:
        config.eval.repeats = args.repeats
    frame, name = None, None
    if args.test:
        frame, name = read_interactions(args.test, dataset, allow_headerless=True), args.test
    trainer.evaluate_run(config, dataset, model, heldout_frame=frame, heldout_name=name,
                         protocol_names=args.protocol or None)


def _data_validate(args):
    from tfvrec.data.dataset import load_dataset
    dataset = load_dataset(args.path)
    print(f"{dataset.path}: valid tfvrec data set '{dataset.name}'")
    print(f"  users {dataset.num_users:,}  items {dataset.num_items:,}  artists {len(dataset.artist_ids):,}")
    for split, frame in dataset.interactions.items():
        print(f"  {split:<10} {len(frame):,} interactions, {frame['user'].nunique():,} users")
    for name, frame in (("social", dataset.social), ("post_tags", dataset.post_tags), ("groups", dataset.groups)):
        if frame is not None:
            print(f"  {name:<10} {len(frame):,} rows")
    for name in dataset.feature_names():
        print(f"  features/{name}: {dataset.features(name).shape}")


def _data_synth(args):
    from tfvrec import config as config_lib
    from tfvrec.data import synthetic
    world = synthetic.SyntheticWorldConfig()
    for assignment in args.set:
        config_lib.override(world, config_lib.parse_set(assignment), source=f"--set {assignment}")
    try:
        world.validate()
    except ValueError as e:
        raise config_lib.ConfigError(f"--set: {e}") from None
    path = synthetic.write_world(args.out, world, overwrite=args.overwrite)
    print(f"Wrote the synthetic world to {path}")


def build_parser():
    parser = argparse.ArgumentParser(prog="tfvrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a config (resumes an interrupted run)")
    p.add_argument("--config", required=True, help="YAML file in configs/ (experiment name + overrides)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set trainer.epochs=3 (repeatable)")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run, optionally on an explicit held-out file")
    p.add_argument("--run", required=True, help="run directory (runtime.model_dir of the training run)")
    p.add_argument("--test", help="held-out interactions: 'user<TAB>item' rows (header optional), "
                                  "ids as in the data set; never seen in training")
    p.add_argument("--protocol", action="append", metavar="full|sampled:N",
                   help="evaluation protocol (repeatable); default: the run's eval.protocols")
    p.add_argument("--repeats", type=int, default=0, help="repeats of the sampled protocol (default: config)")
    p.set_defaults(func=_evaluate)

    data = sub.add_parser("data", help="data sets: import, validate, synth").add_subparsers(
        dest="data_command", required=True)
    from tfvrec.data import importers
    p = data.add_parser("import", help="import a real data set into the tfvrec format")
    importers.add_import_arguments(p)
    p.set_defaults(func=importers.run_import)
    p = data.add_parser("validate", help="load and validate a data set directory")
    p.add_argument("path")
    p.set_defaults(func=_data_validate)
    p = data.add_parser("synth", help="write the synthetic social image world")
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a SyntheticWorldConfig field, e.g. --set num_users=500")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_data_synth)

    from tfvrec import registry
    registry.load_models()
    for module_name in COMMAND_MODULES + tuple(reference for _, reference in registry.commands.items()):
        importlib.import_module(module_name).register_cli(sub)
    return parser


def main(argv=None):
    from absl import logging
    from tfvrec.data.errors import DataError
    from tfvrec.errors import ConfigError
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    # TensorFlow's checkpoint writer logs a line per save at INFO: noise next to the progbar.
    logging.get_absl_handler().addFilter(lambda record: "functional_saver" not in record.pathname)
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, DataError, FileNotFoundError) as e:
        if os.environ.get("TFVREC_DEBUG"):
            raise
        print(f"tfvrec {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
