"""Warm starts: a model that starts from another trained run (HASC's P and W from BPR-MF).

A model package lists its warm starts (``ModelSpec.warm_starts``: ``warm_starts(config)
-> [WarmStart]``); the trainer runs them before training starts (on a resumed run too:
its backup, restored afterwards, then overwrites the weights). For each, it trains the
source run first unless it is finished (`tfvrec.training.trainer.is_finished`),
builds the source model on the same data set, restores its best checkpoint and calls
``load(model, source_model)``.
"""
import dataclasses
from typing import Callable, Optional


@dataclasses.dataclass
class WarmStart:
    source: object  # the source run's ExperimentConfig (its runtime.model_dir is where it lives)
    load: Callable  # load(model, source_model): copy weights into the fresh model
    what: str  # for the log, e.g. "P and W from BPR-MF"
    # check(source_params, run_dir): refuse a source run that cannot be loaded (ConfigError).
    check: Optional[Callable] = None
    train_if_missing: bool = True  # False: the source run must exist and be finished
