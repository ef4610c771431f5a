"""Calling an exported model from Python, in process, with only the inputs a request needs.

A SavedModel's signature functions, loaded with ``tf.saved_model.load``, demand every
input — TensorFlow's Python loader does not apply the defaults of the SignatureDef,
which TF Serving applies (an empty batch for the query kinds a request does not use,
``k`` = ``export.default_k``). `ExportedModel` applies them, takes plain Python values
and returns numpy arrays with strings decoded::

    from tfvrec.serving.client import ExportedModel
    model = ExportedModel("export/models/bpr_synthetic")        # latest version, or a version directory
    model.recommend(user=["u042"], k=5)                        # {"item_ids": [[...]], "scores": [[...]]}
    model.recommend(profile=[["i0001", "i0002"]])              # cold start (models that allow it)
    model.call("score", user=["u042"], items=[["i0001"]])
    model.signatures()                                          # {"serving_default": {inputs, outputs}, ...}
"""
import os

import numpy as np
import tensorflow as tf

from tfvrec.serving.model_config import existing_versions
from tfvrec.serving.parts import ExportError
from tfvrec.serving.versions import signature_defs


class ExportedModel:
    """One exported version (``<base>/<version>/``, or the latest version under ``<base>``)."""

    def __init__(self, path):
        path = os.path.abspath(path)
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            versions = existing_versions(path)
            if not versions:
                raise ExportError(f"{path}: neither a SavedModel version nor a directory of versions")
            path = os.path.join(path, str(versions[-1]))
        self.path = path
        self._defs = signature_defs(path)
        self._loaded = tf.saved_model.load(path)

    def signatures(self):
        """``{name: {"inputs": {name: (dtype, shape)}, "optional": [...], "outputs": [...]}}``."""
        out = {}
        for name, sig in self._defs.items():
            out[name] = {"inputs": {k: (tf.dtypes.as_dtype(v.dtype).name, [d.size for d in v.tensor_shape.dim])
                                    for k, v in sig.inputs.items()},
                         "optional": sorted(sig.defaults), "outputs": sorted(sig.outputs)}
        return out

    def call(self, signature="serving_default", **inputs):
        """Run ``signature`` on the given inputs (lists or arrays); the rest take their defaults."""
        if signature not in self._defs:
            raise ExportError(f"{self.path}: no signature {signature!r}; signatures: {sorted(self._defs)}")
        sig = self._defs[signature]
        unknown = sorted(set(inputs) - set(sig.inputs))
        missing = sorted(set(sig.inputs) - set(inputs) - set(sig.defaults))
        if unknown or missing:
            raise ExportError(f"signature {signature}: unknown inputs {unknown}, missing required inputs {missing}; "
                              f"inputs: {sorted(sig.inputs)} (optional: {sorted(sig.defaults)})")
        args = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in sig.defaults.items()}
        for name, value in inputs.items():
            args[name] = tf.constant(value, dtype=tf.dtypes.as_dtype(sig.inputs[name].dtype))
        outputs = self._loaded.signatures[signature](**args)
        return {name: _decoded(value.numpy()) for name, value in outputs.items()}

    def recommend(self, **query):
        """``serving_default``: top-K ``item_ids`` and ``scores`` for one kind of query."""
        return self.call("serving_default", **query)


def _decoded(value):
    if value.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b,
                            otypes=[object])(value) if value.size else value
    return value
