"""BPR-MF as a baseline row of any user–item table (``eval.baselines: [bpr]``).

The baseline is a full BPR-MF run of the engine, trained once into
``<model_dir>/baselines/bpr-<digest>/`` (reused, or resumed, on the next evaluation):
the run's data, seed and validation rule (split, protocol, metric, users, patience),
``model.bpr`` from the run's config, and the BPR experiment's own trainer settings
(lazy Adam, one pass over the training likes per epoch, early stopping) — the same
tuning effort the model gets from the trainer, on the same validation rule.
"""
import copy
import dataclasses

from tfvrec import config as config_lib
from tfvrec import registry, runs

_VALIDATION_KEYS = ("validation_split", "validation_protocol", "validation_metric", "validation_max_users",
                    "early_stopping_patience", "checkpoint_every_steps", "verbose")


def baseline_config(config):
    """The BPR-MF run behind the ``bpr`` baseline of run ``config``."""
    bpr = config_lib.get_experiment("bpr")
    bpr.data = copy.deepcopy(config.data)
    bpr.runtime = copy.deepcopy(config.runtime)
    bpr.model.bpr = copy.deepcopy(config.model.bpr)
    for key in _VALIDATION_KEYS:
        setattr(bpr.trainer, key, getattr(config.trainer, key))
    config_lib.baseline_trainer(config, "bpr", bpr.trainer)  # the row's recipe (eval.baseline_trainer)
    bpr.eval = dataclasses.replace(config.eval, baselines=[], baseline_trainer={})
    bpr.runtime.model_dir = runs.baseline_run_dir(config.runtime.model_dir, bpr, "bpr")
    return bpr


@registry.register_baseline("bpr")
def _bpr(dataset, config, heldout):
    return runs.ensure_trained(baseline_config(config)).load(dataset=dataset)[2]
