"""``tfvrec serve``: TensorFlow Serving's gRPC and REST APIs over tfvrec exports.

The wire contract is TF Serving's, from the official ``tensorflow_serving.apis``
protos, so a client written for ``tensorflow_model_server`` works unchanged:

- gRPC ``tensorflow.serving.PredictionService``: ``Predict``, ``GetModelMetadata``
  (``signature_def``); ``tensorflow.serving.ModelService``: ``GetModelStatus``.
- REST: ``POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict`` (``instances``
  row format or ``inputs`` columnar format), ``GET /v1/models/<name>[/versions/<v>]``
  (status) and ``.../metadata``.

Models come from a ``model_config_list`` file (``--model_config_file``, what
``tfvrec export`` writes) or ``--model_name/--model_base_path``. Like TF Serving,
each model's ``base_path`` is polled (``--poll_seconds``): a new version directory
is loaded, warmed up with its ``assets.extra/tf_serving_warmup_requests``, then
swapped in; the version it replaces is dropped once its in-flight requests have
finished, so a swap fails no request. The version policy is the config's
(default: latest 1). ScaNN ops are loaded at start-up so ScaNN exports work.

Bad requests get INVALID_ARGUMENT (unknown signature or input, wrong dtype or shape,
unknown id, K out of range, payload or batch over the limits) or NOT_FOUND
(unknown model or version), with a message naming the problem; no request can
stop the server.
"""
import gc
import http.server
import json
import os
import re
import threading
import time
from concurrent import futures
from typing import Dict

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_pb2, predict_pb2,
                                     prediction_log_pb2)
from tensorflow_serving.config import model_server_config_pb2

from tfvrec.serving import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES
from tfvrec.serving.model_config import WARMUP_FILE, read_model_config

DEFAULT_SIGNATURE = "serving_default"
STATE = get_model_status_pb2.ModelVersionStatus.State
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
               grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.NOT_FOUND: 404,
               grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNIMPLEMENTED: 501,
               grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504}


class ServingError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def invalid(message):
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message):
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def load_scann_ops():
    """Register the ScaNN TF ops (``Scann>*``) so ScaNN exports load; False if scann is absent."""
    try:
        from scann.scann_ops.py import scann_ops  # noqa: F401
        return True
    except ImportError as e:
        logging.warning("ScaNN ops unavailable (%s): ScaNN exports will not load", e)
        return False


def clean_tf_message(message):
    """The useful part of a TensorFlow error message (the assertion text, no graph node noise)."""
    found = re.search(r"assertion failed: (.*)", message)
    if found:
        return " ".join(re.findall(r"\[([^\[\]]*)\]", found.group(1))) or found.group(1)
    lines = [line.strip() for line in message.splitlines()]
    keep = [line for line in lines if line and not line.startswith(("Graph execution error", "Detected at node",
                                                                     "<stack traces", "[[{{node"))]
    text = " ".join(keep) or message
    return re.sub(r"\s*\[Op:[^\]]*\]", "", re.sub(r"\s*\[\[\{\{node [^}]*\}\}\]\]", "", text)).strip()


def _dtype_name(enum):
    return types_pb2.DataType.Name(enum)


# ----------------------------------------------------------------------------- one loaded version

class Servable:
    """One loaded SavedModel version: its signatures and their input contracts."""

    def __init__(self, name, version, path):
        self.name, self.version, self.path = name, version, path
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
            self.run(request.model_spec.signature_name or DEFAULT_SIGNATURE, inputs, max_batch_size=0)
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
            raise invalid(f"input size does not match signature {name}: sent {sorted(inputs)}; "
                          f"signature inputs {sorted(sig.inputs)} (optional: {sorted(sig.defaults)}). "
                          f"Sent extra: {extra}. Missing but required: {missing}.")
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

    def run(self, signature_name, inputs, output_filter=(), max_batch_size=DEFAULT_MAX_BATCH_SIZE):
        """Run a signature on numpy inputs; return ``(signature name, {output: numpy})``."""
        name, tensors = self.check_inputs(signature_name, inputs, max_batch_size)
        outputs_wanted = list(output_filter)
        sig = self.defs[name]
        for alias in outputs_wanted:
            if alias not in sig.outputs:
                raise invalid(f"output tensor alias not found in signature: {alias}. Outputs expected to be in "
                              f"the set {{{','.join(sorted(sig.outputs))}}}.")
        if len(set(outputs_wanted)) != len(outputs_wanted):
            raise invalid(f"duplicate output tensor alias in output_filter {outputs_wanted}")
        try:
            outputs = self.functions[name](**tensors)
        except tf.errors.OpError as e:
            raise ServingError(_GRPC_CODES.get(e.error_code, grpc.StatusCode.UNKNOWN),
                               clean_tf_message(e.message)) from None
        except (TypeError, ValueError) as e:  # an input the signature function cannot bind
            raise invalid(f"signature {name}: {e}") from None
        keys = outputs_wanted or sorted(outputs)
        return name, {key: outputs[key].numpy() for key in keys}


# ----------------------------------------------------------------------------- one model name

class ModelManager:
    """The versions of one model: polls its base_path, loads, warms up, swaps, unloads."""

    def __init__(self, config: model_server_config_pb2.ModelConfig):
        if config.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {config.name}: model_platform {config.model_platform!r} is not supported "
                             "(only 'tensorflow')")
        self.config = config
        self.name, self.base_path = config.name, config.base_path
        self._published: Dict[int, Servable] = {}  # replaced, never mutated: readers need no lock
        self.status: Dict[int, tuple] = {}  # version -> (state, error message)
        self._failed = {}  # version -> mtime of the directory that failed to load
        self._lock = threading.Lock()

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
                mtime = os.path.getmtime(path)
                if self._failed.get(version) == mtime:
                    continue
                self.status[version] = (STATE.LOADING, "")
                start = time.time()
                try:
                    servable = Servable(self.name, version, path)
                    warmups = servable.warm_up()
                except Exception as e:  # a broken export must not stop the server or other versions
                    message = clean_tf_message(str(e)) if isinstance(e, tf.errors.OpError) else str(e)
                    if isinstance(e, ServingError):
                        message = f"warm-up request failed: {e.message}"
                    logging.error("Model %s version %d failed to load: %s", self.name, version, message)
                    self.status[version] = (STATE.END, message)
                    self._failed[version] = mtime
                    continue
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


# ----------------------------------------------------------------------------- the server

class ModelServer:
    """Models, version polling and the request logic shared by the gRPC and REST front ends."""

    def __init__(self, model_config_file=None, model_name=None, model_base_path=None, poll_seconds=1.0,
                 max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, max_batch_size=DEFAULT_MAX_BATCH_SIZE):
        self.scann = load_scann_ops()
        self.model_config_file = model_config_file
        self.poll_seconds = poll_seconds
        self.max_request_bytes = max_request_bytes
        self.max_batch_size = max_batch_size
        self.managers: Dict[str, ModelManager] = {}
        self._config_mtime = None
        if model_config_file:
            self._apply_config(read_model_config(model_config_file))
            self._config_mtime = os.path.getmtime(model_config_file)
        elif model_name and model_base_path:
            entry = model_server_config_pb2.ModelConfig(name=model_name, base_path=os.path.abspath(model_base_path),
                                                        model_platform="tensorflow")
            self.managers[model_name] = ModelManager(entry)
        else:
            raise ValueError("give --model_config_file, or --model_name and --model_base_path")
        self._stop = threading.Event()
        self._thread = None

    def _apply_config(self, config_list):
        managers = {}
        for entry in config_list.config:
            old = self.managers.get(entry.name)
            managers[entry.name] = old if old is not None and old.config == entry else ModelManager(entry)
        self.managers = managers

    def poll_once(self):
        if self.model_config_file and os.path.exists(self.model_config_file):
            mtime = os.path.getmtime(self.model_config_file)
            if mtime != self._config_mtime:
                try:
                    self._apply_config(read_model_config(self.model_config_file))
                    self._config_mtime = mtime
                    logging.info("Reloaded %s: models %s", self.model_config_file, sorted(self.managers))
                except (ValueError, FileNotFoundError) as e:
                    logging.error("Ignoring the changed model config: %s", e)
                    self._config_mtime = mtime
        for manager in list(self.managers.values()):
            try:
                manager.poll()
            except Exception:  # the poller must survive anything a model directory holds
                logging.exception("Polling model %s failed", manager.name)

    def start_polling(self):
        def loop():
            while not self._stop.wait(self.poll_seconds):
                self.poll_once()
        self._thread = threading.Thread(target=loop, name="tfvrec-version-poller", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()

    # -- request logic -----------------------------------------------------------------
    def manager(self, name):
        if not name:
            raise invalid("Missing ModelSpec name")
        manager = self.managers.get(name)
        if manager is None:
            raise not_found(f"Servable not found for request: Latest({name}); this server serves "
                            f"{sorted(self.managers)}")
        return manager

    def servable(self, model_spec):
        version = model_spec.version.value if model_spec.HasField("version") else None
        return self.manager(model_spec.name).get(version, model_spec.version_label or None)

    def predict(self, request: predict_pb2.PredictRequest):
        servable = self.servable(request.model_spec)
        inputs = {}
        for key, proto in request.inputs.items():
            inputs[key] = tensor_proto_to_numpy(key, proto)
        name, outputs = servable.run(request.model_spec.signature_name, inputs, request.output_filter,
                                     self.max_batch_size)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = name
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest):
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise invalid(f"Metadata field(s) {fields} not supported; send metadata_field: [\"signature_def\"]")
        servable = self.servable(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in servable.meta_signatures.items():
            signature_map.signature_def[key].CopyFrom(sig)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def status(self, request: get_model_status_pb2.GetModelStatusRequest):
        manager = self.manager(request.model_spec.name)
        statuses = dict(manager.status)
        if request.model_spec.HasField("version"):
            version = request.model_spec.version.value
            if version not in statuses:
                raise not_found(f"Could not find version {version} of model {manager.name}")
            statuses = {version: statuses[version]}
        elif request.model_spec.version_label:
            manager.get(label=request.model_spec.version_label)
            version = dict(manager.config.version_labels)[request.model_spec.version_label]
            statuses = {version: statuses.get(version, (STATE.UNKNOWN, ""))}
        if not statuses:
            raise not_found(f"Could not find any versions of model {manager.name} in {manager.base_path}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in sorted(statuses):
            state, message = statuses[version]
            entry = response.model_version_status.add()
            entry.version, entry.state = version, state
            entry.status.SetInParent()  # error_code OK, as TF Serving reports it
            if message:
                entry.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
                entry.status.error_message = message
        return response


def tensor_proto_to_numpy(key, proto):
    """A request TensorProto as numpy, with a clear INVALID_ARGUMENT when it is malformed."""
    if proto.dtype == types_pb2.DT_INVALID:
        raise invalid(f"input {key}: TensorProto has no dtype")
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise invalid(f"input {key}: unsupported dtype {proto.dtype}") from None
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(f"input {key}: negative dimension in shape {dims}")
    elements = int(np.prod(dims)) if dims else 1
    if elements > 64 * 2 ** 20:
        raise invalid(f"input {key}: shape {dims} has {elements} elements; too large")
    try:
        value = tf.make_ndarray(proto)
    except Exception as e:
        raise invalid(f"input {key}: malformed {_dtype_name(proto.dtype)} TensorProto of shape {dims} ({e})") from None
    if dtype == tf.string:
        value = value.astype(object)
    return value


# ----------------------------------------------------------------------------- gRPC front end

def _grpc_handler(server, fn, request_cls, response_cls):
    def behavior(raw, context):
        code, message = None, None
        try:
            if len(raw) > server.max_request_bytes:
                raise invalid(f"request of {len(raw)} bytes exceeds the server's --max_request_bytes="
                              f"{server.max_request_bytes}")
            try:
                request = request_cls.FromString(raw)
            except DecodeError as e:
                raise invalid(f"malformed {request_cls.__name__}: {e}") from None
            return fn(request)
        except ServingError as e:
            code, message = e.code, e.message
        except Exception as e:  # never let a request take the server down
            logging.exception("Internal error")
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}: {e}"
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(behavior, request_deserializer=None,
                                               response_serializer=response_cls.SerializeToString)


def start_grpc(server, host, port, threads=16):
    # The transport accepts a margin over the limit so an oversized request reaches the handler and
    # gets INVALID_ARGUMENT; beyond 2x the limit gRPC itself answers RESOURCE_EXHAUSTED.
    transport = min(2 ** 31 - 1, 2 * server.max_request_bytes + 2 ** 20)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tfvrec-grpc"),
                              options=[("grpc.max_receive_message_length", transport),
                                       ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0)])
    prediction = grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {
        "Predict": _grpc_handler(server, server.predict, predict_pb2.PredictRequest, predict_pb2.PredictResponse),
        "GetModelMetadata": _grpc_handler(server, server.metadata, get_model_metadata_pb2.GetModelMetadataRequest,
                                          get_model_metadata_pb2.GetModelMetadataResponse),
    })
    models = grpc.method_handlers_generic_handler("tensorflow.serving.ModelService", {
        "GetModelStatus": _grpc_handler(server, server.status, get_model_status_pb2.GetModelStatusRequest,
                                        get_model_status_pb2.GetModelStatusResponse),
    })
    grpc_server.add_generic_rpc_handlers((prediction, models))
    bound = grpc_server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port} (in use?)")
    grpc_server.start()
    return grpc_server, bound


# ----------------------------------------------------------------------------- REST front end

_REST_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                        r"(?P<suffix>/metadata|:predict|:classify|:regress)?/?$")


def _json_value(value):
    """A numpy output as TF Serving's JSON: strings decoded (base64 object when not UTF-8)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "SU":
            return [_json_value(v) for v in value] if value.ndim else _json_value(value.item())
        return value.tolist()
    if isinstance(value, np.generic):  # a row of a [B] output: a numpy scalar
        value = value.item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            import base64
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _from_json(key, value, dtype):
    """A JSON input value → numpy of the signature's dtype, checking kinds strictly."""
    import base64

    def convert(v):
        if isinstance(v, list):
            return [convert(x) for x in v]
        if dtype == tf.string:
            if isinstance(v, dict) and set(v) == {"b64"}:
                try:
                    return base64.b64decode(v["b64"], validate=True)
                except (ValueError, TypeError):
                    raise invalid(f"input {key}: invalid base64 in {v!r}") from None
            if not isinstance(v, str):
                raise invalid(f"input {key}: expects strings, got JSON {type(v).__name__} {v!r}")
            return v.encode("utf-8")
        if dtype == tf.bool:
            if not isinstance(v, bool):
                raise invalid(f"input {key}: expects booleans, got JSON {type(v).__name__} {v!r}")
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise invalid(f"input {key}: expects {dtype.name} numbers, got JSON {type(v).__name__} {v!r}")
        if dtype.is_integer and not (isinstance(v, int) or float(v).is_integer()):
            raise invalid(f"input {key}: expects {dtype.name} integers, got {v!r}")
        return v

    converted = convert(value)
    shape = _rectangular_shape(key, converted)
    array = np.empty(shape, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
    try:
        if shape:
            array[...] = converted if dtype != tf.string else _nested_to_object(converted, shape)
        else:
            array[()] = converted
    except (ValueError, OverflowError, TypeError) as e:
        raise invalid(f"input {key}: values do not fit {dtype.name} ({e})") from None
    return array


def _rectangular_shape(key, value):
    if not isinstance(value, list):
        return ()
    shapes = {_rectangular_shape(key, v) for v in value}
    if len(shapes) > 1:
        raise invalid(f"input {key}: not a rectangular array (rows of different lengths or depths)")
    return (len(value),) + (shapes.pop() if shapes else ())


def _nested_to_object(value, shape):
    flat = []

    def walk(v):
        if isinstance(v, list):
            for x in v:
                walk(x)
        else:
            flat.append(v)
    walk(value)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(shape)


def rest_predict(server, name, version, label, body):
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid(f"request body is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise invalid("request body must be a JSON object with 'instances' or 'inputs'")
    unknown = set(payload) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise invalid(f"unknown request key(s) {sorted(unknown)}; expected signature_name and instances or inputs")
    if ("instances" in payload) == ("inputs" in payload):
        raise invalid("request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    manager = server.manager(name)
    servable = manager.get(int(version) if version else None, label)
    signature_name, sig = servable.signature(payload.get("signature_name", DEFAULT_SIGNATURE))
    dtypes = {key: tf.dtypes.as_dtype(info.dtype) for key, info in sig.inputs.items()}
    row_format = "instances" in payload
    if row_format:
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise invalid("'instances' must be a non-empty list")
        if all(isinstance(i, dict) and "b64" not in i for i in instances):
            keys = set(instances[0])
            if any(set(i) != keys for i in instances):
                raise invalid("every instance must have the same named inputs")
            columns = {key: [i[key] for i in instances] for key in keys}
        elif len(sig.inputs) - len(sig.defaults) <= 1 and len(sig.inputs) >= 1:
            required = [k for k in sig.inputs if k not in sig.defaults] or list(sig.inputs)
            columns = {required[0]: instances}
        else:
            raise invalid(f"instances must be JSON objects naming the inputs of signature {signature_name}: "
                          f"{sorted(sig.inputs)}")
    else:
        inputs = payload["inputs"]
        if isinstance(inputs, dict) and not set(inputs) <= {"b64"}:
            columns = inputs
        else:
            required = [k for k in sig.inputs if k not in sig.defaults] or list(sig.inputs)
            if len(required) != 1:
                raise invalid(f"'inputs' must be a JSON object naming the inputs of signature {signature_name}")
            columns = {required[0]: inputs}
    arrays = {}
    for key, value in columns.items():
        if key not in dtypes:
            raise invalid(f"input tensor alias not found in signature {signature_name}: {key}. Inputs expected "
                          f"to be in the set {{{','.join(sorted(sig.inputs))}}}.")
        arrays[key] = _from_json(key, value, dtypes[key])
    _, outputs = servable.run(signature_name, arrays, max_batch_size=server.max_batch_size)
    if not row_format:
        return {"outputs": _json_value(next(iter(outputs.values()))) if len(outputs) == 1
                else {k: _json_value(v) for k, v in outputs.items()}}
    batch = {v.shape[0] for v in outputs.values() if v.ndim}
    if len(batch) != 1 or any(v.ndim == 0 for v in outputs.values()):
        raise invalid("outputs of this signature do not share a batch dimension; use the columnar 'inputs' format")
    rows = batch.pop()
    if len(outputs) == 1:
        only = next(iter(outputs.values()))
        return {"predictions": [_json_value(only[r]) for r in range(rows)]}
    return {"predictions": [{k: _json_value(v[r]) for k, v in outputs.items()} for r in range(rows)]}


def _rest_get(server, name, version, label, suffix):
    spec = model_pb2.ModelSpec(name=name)
    if version:
        spec.version.value = int(version)
    if label:
        spec.version_label = label
    if suffix == "/metadata":
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
        return json_format.MessageToDict(server.metadata(request), preserving_proto_field_name=True)
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
    return json_format.MessageToDict(server.status(request), preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def make_rest_handler(server):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tfvrec-serve"

        def log_message(self, fmt, *args):  # requests are not logged one by one
            pass

        def _reply(self, status, payload):
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, code, message):
            self._reply(HTTP_STATUS.get(code, 500), {"error": message})

        def _route(self):
            path = self.path.split("?", 1)[0]
            match = _REST_PATH.match(path)
            if not match:
                raise not_found(f"Malformed request: {self.command} {path}; expected /v1/models/<name>"
                                "[/versions/<version>|/labels/<label>][:predict|/metadata]")
            return match.group("name"), match.group("version"), match.group("label"), match.group("suffix")

        def _answer(self, respond):
            """Reply with ``respond()``'s payload, or with the error it raised (never a dropped connection)."""
            try:
                self._reply(200, respond())
            except ServingError as e:
                self._error(e.code, e.message)
            except Exception as e:
                logging.exception("Internal error")
                self._error(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}: {e}")

        def _get(self):
            name, version, label, suffix = self._route()
            if suffix not in (None, "/metadata"):
                raise invalid(f"{suffix} needs POST")
            return _rest_get(server, name, version, label, suffix)

        def _post(self):
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                raise invalid("POST needs a Content-Length header")
            length = int(length)
            if length > server.max_request_bytes:
                self.close_connection = True  # the body stays unread
                raise invalid(f"request of {length} bytes exceeds the server's --max_request_bytes="
                              f"{server.max_request_bytes}")
            body = self.rfile.read(length)
            name, version, label, suffix = self._route()
            if suffix != ":predict":
                raise invalid(f"only :predict is supported for POST (got {suffix or 'no verb'})")
            return rest_predict(server, name, version, label, body)

        def do_GET(self):
            self._answer(self._get)

        def do_POST(self):
            self._answer(self._post)

    return Handler


def start_rest(server, host, port):
    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    httpd = Server((host, port), make_rest_handler(server))
    thread = threading.Thread(target=httpd.serve_forever, name="tfvrec-rest", daemon=True)
    thread.start()
    return httpd, httpd.server_address[1]
