"""VBPR as a baseline row of any user–item table (``eval.baselines: [vbpr]``).

The baseline is a full VBPR run of the engine (`tfvrec.runs.baseline_run`), trained once into
``<model_dir>/baselines/vbpr-<digest>/`` (reused, or resumed, on the next evaluation): the run's
data, seed and validation rule (split, protocol, metric, users, patience), its model sections
(``model.vbpr`` for VBPR itself; the others for a sampler VBPR borrows, e.g. CuratorNet's
guidelines with their clusters and profiles), and the VBPR experiment's trainer — the same
early stopping on the same holdout the table's model gets.
"""
import copy
import dataclasses

from tfvrec import config as config_lib
from tfvrec import registry, runs

_VALIDATION_KEYS = ("validation_split", "validation_protocol", "validation_metric", "validation_max_users",
                    "early_stopping_patience", "checkpoint_every_steps", "verbose")


def baseline_config(config):
    """The VBPR run behind the ``vbpr`` baseline of run ``config``."""
    vbpr = config_lib.get_experiment("vbpr")
    vbpr.data = copy.deepcopy(config.data)
    vbpr.runtime = copy.deepcopy(config.runtime)
    vbpr.model = copy.deepcopy(config.model)
    vbpr.model.name = "vbpr"
    for key in _VALIDATION_KEYS:
        setattr(vbpr.trainer, key, getattr(config.trainer, key))
    config_lib.baseline_trainer(config, "vbpr", vbpr.trainer)  # the row's recipe (eval.baseline_trainer)
    vbpr.eval = dataclasses.replace(config.eval, baselines=[], baseline_trainer={})
    vbpr.runtime.model_dir = runs.baseline_run_dir(config.runtime.model_dir, vbpr, "vbpr")
    return vbpr


@registry.register_baseline("vbpr")
def _vbpr(dataset, config, heldout):
    return runs.ensure_trained(baseline_config(config)).load(dataset=dataset)[2]
