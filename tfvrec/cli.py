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
from tfvrec import registry
from tfvrec.data import importers
from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError, clean_tf_message, shorten
from tfvrec.runs.state import Preempted

EXIT_USAGE = 2  # a user mistake: the message says what to change
EXIT_INTERNAL = 1  # a bug or an environment failure: the message says what happened
EXIT_INTERRUPTED = 130
MESSAGE_LIMIT = 1500  # characters of one error message

# The engine's modules that add sub-commands with ``register_cli(subparsers)`` (each sets
# ``func``); model packages add theirs through the registry (``ModelSpec.commands``).
COMMAND_MODULES = (
    "tfvrec.features.extract",  # tfvrec features
    "tfvrec.inspect.cli",  # tfvrec tensorboard | report
    "tfvrec.serving.cli",  # tfvrec export | serve | index
    "tfvrec.triplets.cli",  # tfvrec triplets
)

# Log lines hidden unless --verbose: they say nothing a user can act on.
NOISE = ("functional_saver", "is slow compared to the batch time", "Logging before flag parsing",
         "update_checkpoint_state", "checkpoint_management")


def _recommend_arguments(subparsers):
    parser = subparsers.add_parser("recommend", help="top-K for a known user (any model), or for a new user from "
                                                     "liked items (content models), new items included")
    parser.add_argument("--run", required=True, help="run directory of a trained model")
    parser.add_argument("--user", help="a user id of the run's data set (users.tsv)")
    parser.add_argument("--items", nargs="+", metavar="ID", help="cold start: liked item ids (space or comma "
                                                                 "separated)")
    parser.add_argument("--embeddings", metavar="FILE.npz", help="cold start: content vectors of liked items "
                                                                 "(feature file: item, features)")
    parser.add_argument("--new-items", metavar="FILE",
                        help="cold start: new items to rank with the catalogue: a feature file (.npz), or a table "
                             "with columns item, artist for artist one-hot models")
    parser.add_argument("-k", "--k", type=int, default=10, help="number of recommendations (default 10)")
    parser.add_argument("--include-profile", action="store_true", help="cold start: allow the profile's own items")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func="tfvrec.inference:run_cli")


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
    p.set_defaults(func="tfvrec.commands:train")

    p = sub.add_parser("evaluate", help="evaluate a trained run, optionally on an explicit held-out file")
    p.add_argument("--run", required=True, help="run directory (runtime.model_dir of the training run)")
    p.add_argument("--test", help="held-out interactions: 'user<TAB>item' rows (header optional), "
                                  "ids as in the data set; never seen in training")
    p.add_argument("--protocol", action="append", metavar="full|new_items|sampled:N|candidates:N",
                   help="evaluation protocol (repeatable); default: the run's eval.protocols")
    p.add_argument("--repeats", type=int, default=0, help="repeats of the sampled protocol (default: config)")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="evaluate a run that has not finished training (its best checkpoint so far; the table "
                        "says so)")
    p.set_defaults(func="tfvrec.commands:evaluate")

    data = sub.add_parser("data", help="data sets: import, validate, synth").add_subparsers(
        dest="data_command", required=True, metavar="COMMAND")
    p = data.add_parser("import", help="import a real data set into the tfvrec format")
    importers.add_import_arguments(p)
    p.set_defaults(func=importers.run_import)
    p = data.add_parser("validate", help="load and validate a data set directory")
    p.add_argument("path")
    p.add_argument("--drop-truncated-rows", action="store_true",
                   help="drop (and report) a last row cut short by a truncated copy instead of refusing the file")
    p.set_defaults(func="tfvrec.commands:data_validate")
    p = data.add_parser("synth", help="write the synthetic social image world")
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a SyntheticWorldConfig field, e.g. --set num_users=500")
    p.add_argument("--overwrite", action="store_true", help="replace a data set tfvrec wrote at --out (never another "
                                                             "directory)")
    p.set_defaults(func="tfvrec.commands:data_synth")
    _recommend_arguments(sub)

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
    text = " ".join(str(error).split()) or type(error).__name__
    return shorten(text, MESSAGE_LIMIT)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    _quiet(verbose)
    args = build_parser().parse_args(argv)
    user_errors = (ConfigError, DataError, OSError, UnicodeDecodeError)
    try:
        # A verb's work is named by reference ("module:function") and imported only now, after the log
        # settings above: building the parser imports no TensorFlow.
        func = args.func if callable(args.func) else registry.resolve(args.func)
        func(args)
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
            print(f"tfvrec {args.command}: error: TensorFlow: {_message(clean_tf_message(e.message))}",
                  file=sys.stderr)
        else:
            print(f"tfvrec {args.command}: internal error: {type(e).__name__}: {_message(e)} (run with "
                  "TFVREC_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
