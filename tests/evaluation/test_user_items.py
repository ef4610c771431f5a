"""The default evaluation of a run: the same splits and baselines at training time and when reloaded."""
import json
import os

import numpy as np

from tfvrec.runs import Run
from tfvrec import config as config_lib
from tfvrec.data import splits
from tfvrec.evaluation import evaluator, user_items
from tfvrec.training import trainer

from planted import planted_dataset


def test_train_holdout_run_is_judged_the_same_at_training_time_and_when_reloaded(tmp_path):
    data = planted_dataset(str(tmp_path / "data"))
    model_dir = str(tmp_path / "run")
    config = config_lib.load_config(None, [
        "data.source=directory", f"data.path={data}", f"runtime.model_dir={model_dir}",
        "runtime.distribution_strategy=default", "trainer.epochs=2", "trainer.batch_size=64", "trainer.verbose=0",
        "model.bpr.embedding_dim=8", "trainer.validation_split=train_holdout", "eval.split=validation",
        "eval.protocols=[sampled:20]", "eval.repeats=2", "eval.baselines=[popularity, random]"])
    trainer.train(config)
    at_training = json.load(open(os.path.join(model_dir, "metrics.json")))
    _, dataset, model = Run(model_dir).load()
    # The reloaded run carved the same one-like-per-user holdout out of train ...
    holdout = dataset.split(splits.HOLDOUT_SPLIT)
    assert len(holdout) == dataset.num_users
    assert not set(zip(holdout.user, holdout.item)) & set(zip(dataset.split("train").user,
                                                              dataset.split("train").item))
    # ... so judging the validation split never draws a held-out training like as a negative,
    heldout = evaluator.heldout_by_user(dataset.split("validation"))
    exclude = evaluator.exclusions(dataset, heldout, "validation")
    for user, item in zip(holdout.user, holdout.item):
        assert item in exclude[user] or item in heldout[user]
    # ... and every row, the popularity baseline's included, has the figures of training time.
    rows = user_items.evaluate_run(config, dataset, model, write=False)
    for (name, result), stored in zip(rows, at_training["results"]):
        np.testing.assert_allclose([result.metrics[m] for m in sorted(result.metrics)],
                                   [stored["metrics"][m] for m in sorted(result.metrics)], rtol=1e-9, err_msg=name)
