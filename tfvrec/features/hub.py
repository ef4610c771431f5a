"""A TF-Hub image model as a feature extractor: batches of ``[0, 1]`` RGB images → ``[n, d]`` vectors."""
import os

import numpy as np

from tfvrec.data.errors import DataError
from tfvrec.features import import_hub

DEFAULT_IMAGE_SIZE = 224
PIXEL_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}
# Output keys tried, in order, when a signature returns several tensors and none was named.
FEATURE_KEYS = ("features", "feature_vector", "default", "output_0")


class HubExtractor:
    """Loads a TF-Hub handle and turns batches of ``[0, 1]`` images into ``[n, d]`` vectors."""

    def __init__(self, handle, signature=None, output_key=None, image_size=None, pixel_range="0,1", loaded=None):
        """``loaded``: the object ``hub.load(handle)`` returned, if the caller already has it."""
        import tensorflow as tf

        self.handle = handle
        if loaded is not None:
            self.obj = loaded
        else:
            hub = import_hub()
            try:
                self.obj = hub.load(handle)
            except Exception as e:  # missing dir, not a SavedModel, offline URL, ...
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise DataError(handle, f"cannot load this TF-Hub handle ({first})") from None
        self.signature, self.fn, spec, self.input_name = self._choose_function(signature)
        self.output_key = output_key
        self.input_dtype = spec.dtype if spec is not None else tf.float32
        shape = spec.shape if spec is not None and spec.shape.rank is not None else tf.TensorShape([None] * 4)
        if shape.rank != 4 or (shape[-1] is not None and shape[-1] != 3):
            raise DataError(handle, f"{self.signature} takes input of shape {shape}; expected RGB images "
                                    "[batch, height, width, 3]")
        fixed = [d for d in shape[1:3] if d is not None]
        if fixed:
            if len(fixed) != 2 or fixed[0] != fixed[1]:
                raise DataError(handle, f"{self.signature} takes non-square images {shape}; not supported")
            if image_size is not None and image_size != fixed[0]:
                raise DataError(handle, f"{self.signature} takes {fixed[0]}x{fixed[0]} images, "
                                        f"but --image-size {image_size} was given")
            self.image_size = int(fixed[0])
        else:
            self.image_size = int(image_size or DEFAULT_IMAGE_SIZE)
        if self.input_dtype not in (tf.float32, tf.uint8):
            raise DataError(handle, f"{self.signature} takes {self.input_dtype.name} images; "
                                    "only float32 and uint8 inputs are supported")
        self.pixel_range = PIXEL_RANGES[pixel_range]

    def _choose_function(self, name):
        signatures = dict(getattr(self.obj, "signatures", {}) or {})
        call = getattr(self.obj, "__call__", None)
        call = call if hasattr(call, "concrete_functions") else None
        if name is None:
            for candidate in ("features", "__call__", "default", "serving_default"):
                if candidate == "__call__" and call is not None or candidate in signatures:
                    name = candidate
                    break
            else:
                raise DataError(self.handle, "the model has no signatures and no __call__ function to extract with")
        if name == "__call__":
            if call is None:
                raise DataError(self.handle, f"the model has no __call__ function; signatures: {sorted(signatures)}")
            specs = []
            for concrete in call.concrete_functions:
                args, _ = concrete.structured_input_signature
                if args and hasattr(args[0], "shape"):
                    specs.append(args[0])
            return name, call, (specs[0] if specs else None), None
        if name not in signatures:
            raise DataError(self.handle, f"the model has no signature {name!r}; available: "
                                         f"{sorted(signatures) + (['__call__'] if call is not None else [])}")
        fn = signatures[name]
        _, kwargs = fn.structured_input_signature
        if len(kwargs) != 1:
            raise DataError(self.handle, f"signature {name!r} takes inputs {sorted(kwargs)}; expected a single "
                                         "image input")
        (input_name, spec), = kwargs.items()
        return name, fn, spec, input_name

    def __call__(self, images):
        """``images``: float32 tensor ``[n, size, size, 3]`` in ``[0, 1]``; returns ``[n, d]`` float32."""
        import tensorflow as tf

        if self.input_dtype == tf.uint8:
            images = tf.cast(tf.round(images * 255.0), tf.uint8)
        elif self.pixel_range != (0.0, 1.0):
            low, high = self.pixel_range
            images = images * (high - low) + low
        if self.input_name is None:
            out = self.fn(images)
        else:
            out = self.fn(**{self.input_name: images})
        if isinstance(out, dict):
            keys = sorted(out)
            key = self.output_key
            if key is None:
                key = keys[0] if len(keys) == 1 else next((k for k in FEATURE_KEYS if k in out), None)
            if key not in out:
                raise DataError(self.handle, f"{self.signature} returns {keys}; choose one with --output-key")
            out = out[key]
        elif self.output_key is not None:
            raise DataError(self.handle, f"{self.signature} returns a single tensor; --output-key does not apply")
        out = np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float32)
        if out.ndim != 2 or len(out) != int(images.shape[0]):
            raise DataError(self.handle, f"{self.signature} returns shape {out.shape} for {int(images.shape[0])} "
                                         "images; expected [batch, d] feature vectors (pick a feature-vector "
                                         "model or signature)")
        return out

    def identity(self):
        handle = os.path.abspath(self.handle) if os.path.exists(self.handle) else self.handle
        return {"handle": handle, "signature": self.signature, "output_key": self.output_key,
                "image_size": self.image_size, "pixel_range": list(self.pixel_range)}


# ---------------------------------------------------------------------------------------------
