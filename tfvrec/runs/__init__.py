"""The run layer: a run directory as one object (`Run`), "train unless finished" (`ensure_trained`),
baselines' runs (`baseline_run`) and the run state record (`tfvrec.runs.state`). Below the models
and the trainer; imports neither."""
from tfvrec.runs.run import (OtherRunError, Run, baseline_config, baseline_run, baseline_run_dir, check_same_run,
                             ensure_trained, prepare_dataset, restore_weights)

__all__ = ["Run", "OtherRunError", "ensure_trained", "baseline_config", "baseline_run", "baseline_run_dir",
           "check_same_run",
           "prepare_dataset", "restore_weights"]
