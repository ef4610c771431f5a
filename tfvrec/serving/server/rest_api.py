"""REST front end: TF Serving's ``/v1/models/...`` API (``:predict`` in row or columnar format,
status, metadata) and its JSON encoding of tensors."""
import http.server
import json
import re
import threading

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from tfvrec.serving.server.errors import DEFAULT_SIGNATURE, HTTP_STATUS, ServingError, invalid, not_found


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
