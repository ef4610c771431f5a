"""gRPC front end: ``tensorflow.serving.PredictionService`` (Predict, GetModelMetadata) and
``tensorflow.serving.ModelService`` (GetModelStatus), on the official protos."""
from concurrent import futures

import grpc
from absl import logging
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from tfvrec.serving.server.errors import ServingError, invalid


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
            error = ServingError(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}: {e}")
            code, message = error.code, error.message
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(behavior, request_deserializer=None,
                                               response_serializer=response_cls.SerializeToString)


def start_grpc(server, host, port, threads=16, max_concurrent_rpcs=None):
    """Start the gRPC server; returns ``(server, bound port)``. At most ``max_concurrent_rpcs``
    (default 4 × threads) calls are accepted at once, running or queued for a thread; gRPC
    answers more with RESOURCE_EXHAUSTED, so the memory requests hold stays bounded."""
    # The transport accepts a margin over the limit so an oversized request reaches the handler and
    # gets INVALID_ARGUMENT; beyond 2x the limit gRPC itself answers RESOURCE_EXHAUSTED.
    transport = min(2 ** 31 - 1, 2 * server.max_request_bytes + 2 ** 20)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tfvrec-grpc"),
                              options=[("grpc.max_receive_message_length", transport),
                                       ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0)],
                              maximum_concurrent_rpcs=max_concurrent_rpcs or 4 * threads)
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
    try:
        bound = grpc_server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio ≥ 1.5x raises instead of returning 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port} (the port is in use, or the address is not this "
                      "machine's); choose another --port")
    grpc_server.start()
    return grpc_server, bound
