"""VBPR as a baseline row of any user–item table (``eval.baselines: [vbpr]``).

The baseline is a full VBPR run of the engine (`tfvrec.runs.baseline_run`), trained once into
``<model_dir>/baselines/vbpr-<digest>/`` (reused, or resumed, on the next evaluation): the run's
data, seed and validation rule (split, protocol, metric, users, patience), its model sections
(``model.vbpr`` for VBPR itself; the others for a sampler VBPR borrows, e.g. CuratorNet's
guidelines with their clusters and profiles), and the VBPR experiment's trainer — the same
early stopping on the same holdout the table's model gets.
"""
from tfvrec import registry, runs

def baseline_config(config):
    """The VBPR run behind the ``vbpr`` baseline of run ``config``."""
    return runs.baseline_config(config, "vbpr", "vbpr")


@registry.register_baseline("vbpr")
def _vbpr(dataset, config, heldout):
    return runs.ensure_trained(baseline_config(config)).load(dataset=dataset)[2]
