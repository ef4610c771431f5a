"""The VBPR baseline trains to convergence on CuratorNet's validation rule and is cached by everything it uses."""
import types

import numpy as np
import tensorflow as tf

from tfvrec.models.curatornet.baselines import _BestOnValidation


def test_vbpr_keeps_the_best_chunk_and_stops_after_patience():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    values = iter([0.50, 0.70, 0.60, 0.65, 0.90])  # the 5th would win, but patience 2 stops at chunk 4
    kept = {}

    def validate():
        kept[len(kept)] = model.get_weights()
        return types.SimpleNamespace(metrics={"auc": next(values)})

    x, y = np.random.default_rng(0).normal(size=(64, 2)), np.ones((64, 1))
    callback = _BestOnValidation(validate, "auc", patience=2)
    history = model.fit(x, y, epochs=5, batch_size=16, callbacks=[callback], verbose=0)
    assert len(history.history["loss"]) == 4  # stopped after two chunks without gain
    assert callback.best == 0.70
    for restored, best in zip(model.get_weights(), kept[1]):
        np.testing.assert_array_equal(restored, best)


def test_the_vbpr_cache_key_covers_normalization_profiles_and_seed():
    import pandas as pd

    from tfvrec import config as config_lib
    from tfvrec.models.curatornet.baselines import vbpr_digest

    dataset = types.SimpleNamespace(path="/data", split=lambda name: pd.DataFrame({"user": [0], "item": [0]}))
    config = config_lib.get_experiment("curatornet")
    base = vbpr_digest(dataset, config, "features 'pixels'")
    for key, value in (("model.curatornet.feature_normalization", "l2"), ("model.curatornet.max_profile_items", 7),
                       ("runtime.seed", 3), ("model.curatornet.vbpr.l2", 0.5), ("trainer.validation_metric", "hr@5")):
        changed = config_lib.get_experiment("curatornet")
        config_lib.override(changed, config_lib.parse_set(f"{key}={value}"), source="test")
        assert vbpr_digest(dataset, changed, "features 'pixels'") != base, key
    assert vbpr_digest(dataset, config, "features 'pixels'") == base  # a pure function of what it covers
