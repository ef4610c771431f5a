"""Loaded model versions: one `Servable` per SavedModel version, one `ModelManager` per model
name (polls its base path, loads, warms up, swaps, unloads, as TF Serving's version policy)."""
import gc
import os
import threading
import time
from typing import Dict

import grpc
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_status_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from tfvrec.errors import clean_tf_message, quote, shorten
from tfvrec.serving import DEFAULT_MAX_BATCH_SIZE
from tfvrec.serving.model_config import WARMUP_FILE
from tfvrec.serving.server.errors import (DEFAULT_SIGNATURE, GRPC_CODES, MAX_ERROR_CHARS, ServingError, invalid,
                                          not_found)

STATE = get_model_status_pb2.ModelVersionStatus.State


def load_scann_ops():
    """Register the ScaNN TF ops (``Scann>*``) so ScaNN exports load; False if scann is absent."""
    try:
        from scann.scann_ops.py import scann_ops  # noqa: F401
        return True
    except ImportError as e:
        logging.warning("ScaNN ops unavailable (%s): ScaNN exports will not load", e)
        return False


def dtype_name(enum):
    return types_pb2.DataType.Name(enum)


# ----------------------------------------------------------------------------- one loaded version

class Servable:
    """One loaded SavedModel version: its signatures and their input contracts."""

    def __init__(self, name, version, path, batcher=None):
        self.name, self.version, self.path = name, version, path
        self.batcher = batcher
        self.meta_signatures = self._all_signature_defs(path)
        self.defs = {k: v for k, v in self.meta_signatures.items() if not k.startswith("__")}
        self.loaded = tf.saved_model.load(path, tags=["serve"])
        self.functions = {key: self.loaded.signatures[key] for key in self.defs}
        self.defaults = {key: {name: tf.make_ndarray(proto) for name, proto in sig.defaults.items()}
                         for key, sig in self.defs.items()}

    @staticmethod
    def _all_signature_defs(path):
        from tensorflow.python.saved_model import loader_impl
        for meta in loader_impl.parse_saved_model(path).meta_graphs:
            if "serve" in meta.meta_info_def.tags:
                return meta.signature_def
        raise ValueError(f"{path}: no MetaGraph tagged 'serve'")

    def warm_up(self):
        """Replay ``assets.extra/tf_serving_warmup_requests`` (as TF Serving does); return the count."""
        path = os.path.join(self.path, "assets.extra", WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                continue
            request = log.predict_log.request
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            self.run(request.model_spec.signature_name or DEFAULT_SIGNATURE, inputs, max_batch_size=0, batch=False)
            count += 1
        return count

    def signature(self, name):
        name = name or DEFAULT_SIGNATURE
        if name not in self.defs:
            raise invalid(f"Serving signature key \"{name}\" not found in model {self.name} version "
                          f"{self.version}; signatures: {sorted(self.defs)}")
        return name, self.defs[name]

    def check_inputs(self, signature_name, inputs, max_batch_size):
        """Validate named numpy inputs against the SignatureDef; add defaults; return tf tensors."""
        name, sig = self.signature(signature_name)
        extra = sorted(set(inputs) - set(sig.inputs))
        missing = sorted(set(sig.inputs) - set(inputs) - set(sig.defaults))
        if extra or missing:
            raise invalid(f"input size does not match signature {name}: sent {quote(sorted(inputs))}; "
                          f"signature inputs {sorted(sig.inputs)} (optional: {sorted(sig.defaults)}). "
                          f"Sent extra: {quote(extra)}. Missing but required: {missing}.")
        tensors = {}
        for key, info in sig.inputs.items():
            value = inputs.get(key)
            if value is None:
                tensors[key] = tf.constant(self.defaults[name][key])
                continue
            dtype = tf.dtypes.as_dtype(info.dtype)
            if value.dtype != dtype.as_numpy_dtype and not (dtype == tf.string and value.dtype == object):
                raise invalid(f"input {key} of signature {name}: expects dtype {dtype.name}, got "
                              f"{tf.dtypes.as_dtype(value.dtype).name if value.dtype != object else 'string'}")
            if not info.tensor_shape.unknown_rank:
                dims = [d.size for d in info.tensor_shape.dim]
                if value.ndim != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, value.shape)):
                    expected = "[" + ", ".join("?" if d < 0 else str(d) for d in dims) + "]"
                    raise invalid(f"input {key} of signature {name}: expects shape {expected}, "
                                  f"got {list(value.shape)}")
            if max_batch_size and value.ndim and value.shape[0] > max_batch_size:
                raise invalid(f"input {key}: batch of {value.shape[0]} rows exceeds the server's "
                              f"--max_batch_size={max_batch_size}; split the request")
            tensors[key] = tf.constant(value, dtype)
        return name, tensors

    def run(self, signature_name, inputs, output_filter=(), max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch=True):
        """Run a signature on numpy inputs; return ``(signature name, {output: numpy})`` (through the
        server's batch scheduler when batching is on and the signature is batchable)."""
        name, tensors = self.check_inputs(signature_name, inputs, max_batch_size)
        outputs_wanted = list(output_filter)
        sig = self.defs[name]
        for alias in outputs_wanted:
            if alias not in sig.outputs:
                raise invalid(f"output tensor alias not found in signature: {quote(alias)}. Outputs expected to be "
                              f"in the set {{{','.join(sorted(sig.outputs))}}}.")
        if len(set(outputs_wanted)) != len(outputs_wanted):
            raise invalid(f"duplicate output tensor alias in output_filter {quote(outputs_wanted)}")
        keys = outputs_wanted or sorted(sig.outputs)
        if batch and self.batcher is not None:
            plan = self._batch_plan(name, tensors, keys)
            if plan is not None:
                key, batched, fixed, rows = plan
                return name, self.batcher.submit(key, batched, rows,
                                                 lambda joined: self._call(name, {**fixed, **joined}, keys))
        return name, self._call(name, tensors, keys)

    def _call(self, name, tensors, keys):
        try:
            outputs = self.functions[name](**{k: tf.convert_to_tensor(v) for k, v in tensors.items()})
        except tf.errors.OpError as e:
            raise ServingError(GRPC_CODES.get(e.error_code, grpc.StatusCode.UNKNOWN),
                               clean_tf_message(e.message)) from None
        except (TypeError, ValueError) as e:  # an input the signature function cannot bind
            raise invalid(f"signature {name}: {quote(str(e))}") from None
        return {key: outputs[key].numpy() for key in keys}

    def _batchable(self, name):
        """A signature whose every input and output has an unknown batch dimension first (or is a scalar
        input): its rows can be joined and split."""
        sig = self.defs[name]
        for info in sig.outputs.values():
            if info.tensor_shape.unknown_rank or not info.tensor_shape.dim or info.tensor_shape.dim[0].size != -1:
                return False
        for info in sig.inputs.values():
            if info.tensor_shape.unknown_rank or (info.tensor_shape.dim and info.tensor_shape.dim[0].size != -1):
                return False
        return True

    def _batch_plan(self, name, tensors, keys):
        """``(key, batched inputs, fixed inputs, rows)`` or None (the request runs on its own)."""
        if not self._batchable(name):
            return None
        arrays = {k: v.numpy() for k, v in tensors.items()}
        rows = max((a.shape[0] for a in arrays.values() if a.ndim), default=0)
        if rows == 0:
            return None
        batched, fixed, key = {}, {}, [id(self), name, tuple(keys)]
        for input_name, array in sorted(arrays.items()):
            if array.ndim and array.shape[0] == rows:
                batched[input_name] = array
                key.append((input_name, "rows", array.shape[1:], str(array.dtype)))
            else:  # scalars (k) and absent inputs: the same in every request of a batch
                if array.nbytes > 4096:
                    return None
                fixed[input_name] = array
                key.append((input_name, array.shape, array.tobytes() if array.dtype != object else
                            tuple(array.ravel().tolist())))
        return tuple(key), batched, fixed, rows


# ----------------------------------------------------------------------------- one model name

def _fingerprint(path):
    """What changes while a version directory is still being written: its files' sizes and mtimes."""
    total, newest, count = 0, 0.0, 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                info = os.stat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            total, newest, count = total + info.st_size, max(newest, info.st_mtime), count + 1
    return total, newest, count


class _Failure:
    """A version that failed to load: when to try again (TF Serving's --max_num_load_retries and
    --load_retry_interval_micros), and whether its files changed since."""

    def __init__(self, fingerprint, now):
        self.attempts, self.fingerprint, self.last_seen, self.at = 1, fingerprint, fingerprint, now


# TF Serving's defaults: 5 retries, 1 minute apart.
DEFAULT_LOAD_RETRIES = 5
DEFAULT_LOAD_RETRY_INTERVAL = 60.0


class ModelManager:
    """The versions of one model: polls its base_path, loads, warms up, swaps, unloads.

    A version that fails to load (still being copied in, or broken) is retried up to
    ``max_load_retries`` times, ``load_retry_interval`` seconds apart, as TF Serving does —
    and again as soon as its files stop changing after a change (a copy that finished). The
    versions already serving keep serving meanwhile."""

    def __init__(self, config: model_server_config_pb2.ModelConfig, max_load_retries=DEFAULT_LOAD_RETRIES,
                 load_retry_interval=DEFAULT_LOAD_RETRY_INTERVAL, batcher=None):
        if config.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {config.name}: model_platform {config.model_platform!r} is not supported "
                             "(only 'tensorflow')")
        self.config = config
        self.name, self.base_path = config.name, config.base_path
        self.max_load_retries, self.load_retry_interval = max_load_retries, load_retry_interval
        self.batcher = batcher
        self._published: Dict[int, Servable] = {}  # replaced, never mutated: readers need no lock
        self.status: Dict[int, tuple] = {}  # version -> (state, error message)
        self._failed: Dict[int, _Failure] = {}
        self.load_attempts = 0  # (for tests and benchmarks)
        self._lock = threading.Lock()

    def _should_try(self, version, path, now):
        failure = self._failed.get(version)
        if failure is None:
            return True
        fingerprint = _fingerprint(path)
        settled = fingerprint == failure.last_seen  # unchanged since the previous poll
        failure.last_seen = fingerprint
        if fingerprint != failure.fingerprint and settled:
            failure.attempts = 0  # new files that stopped changing: a fresh set of retries
            return True
        return failure.attempts <= self.max_load_retries and now - failure.at >= self.load_retry_interval

    def _aspired(self, versions):
        policy = self.config.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        if kind == "all":
            return set(versions)
        if kind == "specific":
            return set(versions) & set(policy.specific.versions)
        n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
        return set(sorted(versions)[-n:])

    def available_versions(self):
        if not os.path.isdir(self.base_path):
            return []
        found = []
        for entry in os.listdir(self.base_path):
            path = os.path.join(self.base_path, entry)
            if entry.isdigit() and (os.path.exists(os.path.join(path, "saved_model.pb"))
                                    or os.path.exists(os.path.join(path, "saved_model.pbtxt"))):
                found.append(int(entry))
        return found

    def poll(self):
        """Load newly aspired versions, then drop versions no longer aspired. Returns True on change."""
        with self._lock:
            aspired = self._aspired(self.available_versions())
            changed = False
            for version in sorted(aspired - set(self._published)):
                path = os.path.join(self.base_path, str(version))
                now = time.time()
                if not self._should_try(version, path, now):
                    continue
                self.status[version] = (STATE.LOADING, "")
                start = time.time()
                self.load_attempts += 1
                try:
                    servable = Servable(self.name, version, path, batcher=self.batcher)
                    warmups = servable.warm_up()
                except Exception as e:  # a broken export must not stop the server or other versions
                    message = clean_tf_message(str(e)) if isinstance(e, tf.errors.OpError) else str(e)
                    if isinstance(e, ServingError):
                        message = f"warm-up request failed: {e.message}"
                    message = shorten(message, MAX_ERROR_CHARS)
                    failure = self._failed.get(version)
                    if failure is None:
                        failure = self._failed[version] = _Failure(_fingerprint(path), now)
                    else:
                        failure.attempts += 1
                        failure.at, failure.fingerprint = now, failure.last_seen
                    left = max(0, self.max_load_retries - failure.attempts + 1)
                    logging.error("Model %s version %d failed to load (attempt %d; %d retries left, every %gs, or "
                                  "when its files change): %s", self.name, version, failure.attempts, left,
                                  self.load_retry_interval, message)
                    self.status[version] = (STATE.END, message)
                    continue
                self._failed.pop(version, None)
                published = dict(self._published)
                published[version] = servable
                self._published = published
                self.status[version] = (STATE.AVAILABLE, "")
                changed = True
                logging.info("Model %s version %d available (%s; %d warm-up requests, %.1fs)", self.name, version,
                             path, warmups, time.time() - start)
            stale = set(self._published) - aspired
            if stale and set(self._published) - stale:  # never drop the last version before a new one serves
                self._published = {v: s for v, s in self._published.items() if v not in stale}
                for version in stale:
                    self.status[version] = (STATE.END, "")
                    logging.info("Model %s version %d unloaded", self.name, version)
                changed = True
            elif stale and not aspired:  # version directories deleted
                self._published = {}
                for version in stale:
                    self.status[version] = (STATE.END, "")
                changed = True
        if changed:
            gc.collect()
        return changed

    def get(self, version=None, label=None):
        published = self._published
        if label:
            labels = dict(self.config.version_labels)
            if label not in labels:
                raise not_found(f"Servable not found for request: Specific({self.name}, label {label!r}); "
                                f"labels: {sorted(labels)}")
            version = labels[label]
        if version is None:
            if not published:
                raise not_found(f"Servable not found for request: Latest({self.name}); no version is loaded "
                                f"from {self.base_path}")
            return published[max(published)]
        if version not in published:
            raise not_found(f"Servable not found for request: Specific({self.name}, {version}); "
                            f"available versions: {sorted(published)}")
        return published[version]

    def versions(self):
        return sorted(self._published)
