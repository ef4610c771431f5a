"""BPR-MF as a baseline row of any user–item table (``eval.baselines: [bpr]``).

The baseline is a full BPR-MF run of the engine, trained once into
``<model_dir>/baselines/bpr-<digest>/`` (reused, or resumed, on the next evaluation):
the run's data, seed and validation rule (split, protocol, metric, users, patience),
``model.bpr`` from the run's config, and the BPR experiment's own trainer settings
(lazy Adam, one pass over the training likes per epoch, early stopping) — the same
tuning effort the model gets from the trainer, on the same validation rule.
"""
from tfvrec import registry, runs

def baseline_config(config):
    """The BPR-MF run behind the ``bpr`` baseline of run ``config``."""
    return runs.baseline_config(config, "bpr", "bpr", sections=("bpr",))


@registry.register_baseline("bpr")
def _bpr(dataset, config, heldout):
    return runs.ensure_trained(baseline_config(config)).load(dataset=dataset)[2]
