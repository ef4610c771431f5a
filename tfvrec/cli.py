"""``tfvrec`` command line: train, evaluate, data (import, validate, synth), features, export,
index, serve, and the models' own commands (``tfvrec --help`` lists them all).

A user mistake (a bad config value, a bad data file, a busy run directory, ...) ends with
one paragraph naming the place and the reason and exit code 2, never a traceback;
``TFVREC_DEBUG=1`` shows the traceback too. A SIGTERM answered by saving the run exits
with 143 (train again to resume). TensorFlow's start-up noise is hidden unless
``--verbose`` is given.
"""
import argparse
import importlib
import logging as std_logging
import os
import sys

import tfvrec  # (selects tf-keras before TensorFlow is imported)

EXIT_USAGE = 2  # a user mistake: the message says what to change
EXIT_INTERNAL = 1  # a bug or an environment failure: the message says what happened
EXIT_INTERRUPTED = 130
MESSAGE_LIMIT = 1500  # characters of one error message

# The engine's modules that add sub-commands with ``register_cli(subparsers)`` (each sets
# ``func``); model packages add theirs through the registry (``ModelSpec.commands``).
COMMAND_MODULES = (
    "tfvrec.features.extract",  # tfvrec features
    "tfvrec.inference",  # tfvrec recommend
    "tfvrec.inspect.cli",  # tfvrec tensorboard | report
    "tfvrec.serving.cli",  # tfvrec export | serve | index
    "tfvrec.triplets.cli",  # tfvrec triplets
)

# Log lines hidden unless --verbose: they say nothing a user can act on.
NOISE = ("functional_saver", "is slow compared to the batch time", "Logging before flag parsing",
         "update_checkpoint_state", "checkpoint_management")


def _train(args):
    from tfvrec import config as config_lib
    from tfvrec.training import trainer
    sets = list(args.set)
    if getattr(args, "skip_bad", False):  # models that read images: skip (and count) unreadable ones
        sets.append(f"model.{_model_name(args, sets)}.skip_bad_images=true")
    config = config_lib.load_config(config_lib.resolve_config_path(args.config), sets)
    trainer.train(config)


def _model_name(args, sets):
    from tfvrec import config as config_lib
    model = config_lib.load_config(config_lib.resolve_config_path(args.config), sets).model
    name = model.name
    section = getattr(model, name)
    if not hasattr(section, "skip_bad_images"):
        raise config_lib.ConfigError(f"--skip-bad: model {name!r} reads no image files")
    return name


def _protocols(values):
    """``--protocol`` values, checked before any work (the valid forms in the message)."""
    from tfvrec.errors import ConfigError, quote
    from tfvrec.evaluation.protocols import parse_protocol
    for value in values or ():
        try:
            parse_protocol(value)
        except ValueError as e:
            raise ConfigError(f"--protocol {quote(value)}: {e}") from None
    return values or None


def _evaluate(args):
    from tfvrec.data.dataset import read_interactions
    from tfvrec.errors import ConfigError
    from tfvrec.training import trainer
    protocols = _protocols(args.protocol)
    if args.repeats < 0:
        raise ConfigError(f"--repeats {args.repeats}: must be ≥ 1 (or 0 for the run's eval.repeats)")
    config = trainer.config_lib.read_params(args.run)
    trainer.check_baselines(config, source=f"{args.run}/params.yaml")
    trainer.check_finished(args.run, allow_unfinished=args.allow_unfinished)
    config, dataset, model = trainer.load_run(args.run, allow_unfinished=True)
    if args.repeats:
        config.eval.repeats = args.repeats
    frame, name = None, None
    if args.test:
        frame, name = read_interactions(args.test, dataset, allow_headerless=True,
                                        truncated=config.data.truncated_rows), args.test
    trainer.evaluate_run(config, dataset, model, heldout_frame=frame, heldout_name=name, protocol_names=protocols)


def _data_validate(args):
    from tfvrec.data.dataset import load_dataset
    dataset = load_dataset(args.path, truncated="drop" if args.drop_truncated_rows else "error")
    print(f"{dataset.path}: valid tfvrec data set '{dataset.name}'")
    print(f"  users {dataset.num_users:,}  items {dataset.num_items:,}  artists {len(dataset.artist_ids):,}")
    for split, frame in dataset.interactions.items():
        print(f"  {split:<10} {len(frame):,} interactions, {frame['user'].nunique():,} users")
    for name, frame in (("social", dataset.social), ("post_tags", dataset.post_tags), ("groups", dataset.groups)):
        if frame is not None:
            print(f"  {name:<10} {len(frame):,} rows")
    for name in dataset.feature_names():
        print(f"  features/{name}: {dataset.features(name).shape}")
    for note in dataset.metadata.get("dropped_rows", []):
        print(f"  dropped: {note}")


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


EPILOG = """examples:
  tfvrec train --config bpr_synthetic                    (a shipped config, by name)
  tfvrec train --config configs/bpr_synthetic.yaml --set trainer.epochs=3 --set runtime.model_dir=runs/try
  tfvrec evaluate --run runs/bpr_synthetic --protocol sampled:100
  tfvrec export --run runs/bpr_synthetic --out export/models/bpr_synthetic
  tfvrec serve --model_config_file export/models.config --rest_port 8501

exit codes: 0 done; 2 a user mistake (the message says what to change); 1 an internal or
environment error; 143 training answered SIGTERM by saving the run (train again to resume)."""


def build_parser():
    parser = argparse.ArgumentParser(prog="tfvrec", description="tfvrec: train, evaluate, export and serve "
                                     "personalized, visually-aware image recommenders.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tfvrec {tfvrec.__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's and Keras' own log lines too (also accepted after the command)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a config (resumes an interrupted run exactly)")
    p.add_argument("--config", required=True,
                   help="YAML file (experiment name + overrides), or the name of a shipped config, e.g. "
                        "curatornet_synthetic")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set trainer.epochs=3 (repeatable)")
    p.add_argument("--skip-bad", action="store_true",
                   help="models that read image files (cdl): skip and count missing or undecodable images "
                        "instead of stopping at the first")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run, optionally on an explicit held-out file")
    p.add_argument("--run", required=True, help="run directory (runtime.model_dir of the training run)")
    p.add_argument("--test", help="held-out interactions: 'user<TAB>item' rows (header optional), "
                                  "ids as in the data set; never seen in training")
    p.add_argument("--protocol", action="append", metavar="full|sampled:N|candidates:N",
                   help="evaluation protocol (repeatable); default: the run's eval.protocols")
    p.add_argument("--repeats", type=int, default=0, help="repeats of the sampled protocol (default: config)")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="evaluate a run that has not finished training (its best checkpoint so far; the table "
                        "says so)")
    p.set_defaults(func=_evaluate)

    data = sub.add_parser("data", help="data sets: import, validate, synth").add_subparsers(
        dest="data_command", required=True, metavar="COMMAND")
    from tfvrec.data import importers
    p = data.add_parser("import", help="import a real data set into the tfvrec format")
    importers.add_import_arguments(p)
    p.set_defaults(func=importers.run_import)
    p = data.add_parser("validate", help="load and validate a data set directory")
    p.add_argument("path")
    p.add_argument("--drop-truncated-rows", action="store_true",
                   help="drop (and report) a last row cut short by a truncated copy instead of refusing the file")
    p.set_defaults(func=_data_validate)
    p = data.add_parser("synth", help="write the synthetic social image world")
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a SyntheticWorldConfig field, e.g. --set num_users=500")
    p.add_argument("--overwrite", action="store_true", help="replace a data set tfvrec wrote at --out (never another "
                                                             "directory)")
    p.set_defaults(func=_data_synth)

    from tfvrec import registry
    registry.load_models()
    for module_name in COMMAND_MODULES + tuple(reference for _, reference in registry.commands.items()):
        importlib.import_module(module_name).register_cli(sub)
    return parser


def _quiet(verbose):
    """TensorFlow's C++ start-up lines (cuInit, CPU features), absl's "Logging before flag
    parsing", Keras' "callback is slow" and deprecation warnings: hidden unless ``--verbose``."""
    from absl import flags, logging
    if tfvrec.USER_TF_CPP_MIN_LOG_LEVEL is None:  # (a level the user set is kept)
        # Read when TensorFlow's C++ library loads: 3 hides its ERROR lines too (cuInit on a machine
        # without a GPU, grappler's dumps); real failures still reach Python as exceptions.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if not verbose:  # gRPC's C++ core logs a failed bind itself; our message says it once
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    if not verbose:
        logging.get_absl_handler().addFilter(
            lambda record: not any(noise in record.pathname or noise in str(record.msg) for noise in NOISE))
        std_logging.getLogger("tensorflow").setLevel(std_logging.ERROR)


def _message(error):
    from tfvrec.errors import shorten
    text = " ".join(str(error).split()) or type(error).__name__
    return shorten(text, MESSAGE_LIMIT)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    _quiet(verbose)
    from tfvrec.data.errors import DataError
    from tfvrec.errors import ConfigError
    from tfvrec.training.runstate import Preempted
    args = build_parser().parse_args(argv)
    user_errors = (ConfigError, DataError, OSError, UnicodeDecodeError)
    try:
        args.func(args)
    except Preempted as e:
        print(f"tfvrec {args.command}: {_message(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"tfvrec {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except user_errors as e:
        if os.environ.get("TFVREC_DEBUG"):
            raise
        print(f"tfvrec {args.command}: error: {_message(e)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a bug, or TensorFlow failing underneath: one paragraph still
        if os.environ.get("TFVREC_DEBUG"):
            raise
        tf = sys.modules.get("tensorflow")
        if tf is not None and isinstance(e, tf.errors.OpError):
            from tfvrec.errors import clean_tf_message
            print(f"tfvrec {args.command}: error: TensorFlow: {_message(clean_tf_message(e.message))}",
                  file=sys.stderr)
        else:
            print(f"tfvrec {args.command}: internal error: {type(e).__name__}: {_message(e)} (run with "
                  "TFVREC_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
