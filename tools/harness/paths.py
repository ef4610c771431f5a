"""Code paths that many sections measure, named once (a section's ``paths`` add them up).

A path is a file or a folder, relative to the repository; `harness.fresh` calls a figure stale when
anything under its paths changed since its stamp.
"""
CONFIG = ("tfvrec/config.py",)  # every default of every section of a run (export defaults included)
DATA = ("tfvrec/data",)  # data sets, importers, splits (the train holdout), content
TRAINING = ("tfvrec/training", "tfvrec/runs", "tfvrec/inputs", "tfvrec/tasks", "tfvrec/losses",
            "tfvrec/objectives.py", "tfvrec/registry.py") + CONFIG + DATA
EVALUATION = ("tfvrec/evaluation",) + DATA
EXPORT = ("tfvrec/serving/module.py", "tfvrec/serving/parts.py", "tfvrec/serving/versions.py",
          "tfvrec/serving/model_config.py", "tfvrec/retrieval.py") + CONFIG
SERVER = ("tfvrec/serving/server", "tfvrec/serving/commands.py", "tfvrec/serving/cli.py") + EXPORT
FEATURES = ("tfvrec/features", "tools/convert_efficientnet_lite0.py")


def model(name):
    """A model package of the zoo."""
    return (f"tfvrec/models/{name}",)


def config(name):
    return (f"configs/{name}",)
