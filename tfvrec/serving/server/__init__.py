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

Modules: `errors` (request errors and their codes), `servables` (loaded versions and
the version policy), `model_server` (the request logic), `grpc_api` and `rest_api`
(the two front ends), `launch` (``tfvrec serve`` in a child process and its ports: what
the tests and tools/ use).
"""
from tfvrec.serving.server.errors import ServingError, invalid, not_found
from tfvrec.serving.server.grpc_api import start_grpc
from tfvrec.serving.server.model_server import ModelServer, tensor_proto_to_numpy
from tfvrec.serving.server.rest_api import rest_predict, start_rest
from tfvrec.serving.server.servables import ModelManager, Servable, load_scann_ops

__all__ = ["ModelServer", "ModelManager", "Servable", "ServingError", "invalid", "not_found", "start_grpc",
           "start_rest", "rest_predict", "tensor_proto_to_numpy", "load_scann_ops"]
