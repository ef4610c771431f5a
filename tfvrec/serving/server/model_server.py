"""The request logic shared by the gRPC and REST front ends: models, version polling, Predict,
GetModelMetadata and GetModelStatus on TF Serving's protos."""
import os
import threading
from typing import Dict

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from tfvrec.serving import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES
from tfvrec.serving.model_config import read_model_config
from tfvrec.serving.server.errors import invalid, not_found
from tfvrec.serving.server.batching import BatchScheduler
from tfvrec.serving.server.servables import (DEFAULT_LOAD_RETRIES, DEFAULT_LOAD_RETRY_INTERVAL, STATE, ModelManager,
                                             dtype_name, load_scann_ops)


class ModelServer:
    """Models, version polling and the request logic shared by the gRPC and REST front ends."""

    def __init__(self, model_config_file=None, model_name=None, model_base_path=None, poll_seconds=1.0,
                 max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, max_batch_size=DEFAULT_MAX_BATCH_SIZE,
                 max_load_retries=DEFAULT_LOAD_RETRIES, load_retry_interval=DEFAULT_LOAD_RETRY_INTERVAL,
                 batching=None):
        """``batching``: None, or the keyword arguments of a `BatchScheduler` (``--enable_batching``)."""
        self.scann = load_scann_ops()
        self.model_config_file = model_config_file
        self.poll_seconds = poll_seconds
        self.max_request_bytes = max_request_bytes
        self.max_batch_size = max_batch_size
        self.max_load_retries, self.load_retry_interval = max_load_retries, load_retry_interval
        self.batcher = BatchScheduler(**batching) if batching is not None else None
        self.managers: Dict[str, ModelManager] = {}
        self._config_mtime = None
        if model_config_file:
            self._apply_config(read_model_config(model_config_file))
            self._config_mtime = os.path.getmtime(model_config_file)
        elif model_name and model_base_path:
            entry = model_server_config_pb2.ModelConfig(name=model_name, base_path=os.path.abspath(model_base_path),
                                                        model_platform="tensorflow")
            self.managers[model_name] = self._manager(entry)
        else:
            raise ValueError("give --model_config_file, or --model_name and --model_base_path")
        self._stop = threading.Event()
        self._thread = None

    def _apply_config(self, config_list):
        managers = {}
        for entry in config_list.config:
            old = self.managers.get(entry.name)
            managers[entry.name] = old if old is not None and old.config == entry else self._manager(entry)
        self.managers = managers

    def _manager(self, entry):
        return ModelManager(entry, max_load_retries=self.max_load_retries, load_retry_interval=self.load_retry_interval,
                            batcher=self.batcher)

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
        if self.batcher is not None:
            self.batcher.stop()

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
        raise invalid(f"input {key}: malformed {dtype_name(proto.dtype)} TensorProto of shape {dims} ({e})") from None
    if dtype == tf.string:
        value = value.astype(object)
    return value
