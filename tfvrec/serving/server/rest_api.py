"""REST front end: TF Serving's ``/v1/models/...`` API (``:predict`` in row or columnar format,
status, metadata) and its JSON encoding of tensors.

The HTTP server is asyncio with `h11 <https://github.com/python-hyper/h11>`_ for HTTP/1.1
(the sans-I/O parser httpcore and uvicorn use; pure Python, no dependencies): one event
loop holds every connection, so slow or idle clients cost a socket, not a thread, and
the request work runs on a bounded pool. Limits, as TF Serving's REST server keeps them:

- a listen backlog (``backlog``), so a burst of connections queues instead of being reset;
- at most ``max_connections`` open connections; past that a connection is answered
  ``503`` (and closed gracefully, never reset);
- per-connection read timeouts: a request must arrive within ``request_timeout`` seconds
  (a client sending half a request gets ``408`` and is closed), an idle keep-alive
  connection is closed after ``idle_timeout``;
- at most ``workers`` requests run at once and ``queue`` more wait; past that ``503``;
- bodies over ``max_request_bytes`` are refused before they are read (``400``), and the
  bodies held at once (being read, queued or answered) add up to at most
  ``max_inflight_bytes`` (counted as they arrive, so a stalled client holds little): a
  request that passes it is answered ``503``. So the memory requests hold is bounded, and a
  body, its parsed JSON and its tensors are released as soon as its answer is sent.
"""
import asyncio
import json
import re
import resource
import socket
import threading
from concurrent import futures

import grpc
import h11
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from tfvrec.errors import quote
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
                    raise invalid(f"input {key}: invalid base64 in {quote(v)}") from None
            if not isinstance(v, str):
                raise invalid(f"input {key}: expects strings, got JSON {type(v).__name__} {quote(v)}")
            return v.encode("utf-8")
        if dtype == tf.bool:
            if not isinstance(v, bool):
                raise invalid(f"input {key}: expects booleans, got JSON {type(v).__name__} {quote(v)}")
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise invalid(f"input {key}: expects {dtype.name} numbers, got JSON {type(v).__name__} {quote(v)}")
        if dtype.is_integer and not (isinstance(v, int) or float(v).is_integer()):
            raise invalid(f"input {key}: expects {dtype.name} integers, got {quote(v)}")
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
        raise invalid(f"input {key}: values do not fit {dtype.name} ({quote(str(e))})") from None
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


def _parse_json(body):
    if not body.strip():
        raise invalid("request body is empty; expected a JSON object with 'instances' or 'inputs'")
    try:
        return json.loads(body)
    except RecursionError:  # (the C decoder counts its depth: no stack is at risk)
        raise invalid("request body nests JSON arrays or objects too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid(f"request body is not valid JSON: {quote(str(e))}") from None


def rest_predict(server, name, version, label, body):
    """Answer a ``:predict`` body; anything wrong with the body is INVALID_ARGUMENT (400), never 500."""
    try:
        servable, signature_name, arrays, row_format = _predict_inputs(server, name, version, label, body)
    except ServingError:
        raise
    except Exception as e:  # a body no check above foresaw: still the client's, not the server's
        raise invalid(f"malformed request: {type(e).__name__}: {quote(str(e))}") from None
    _, outputs = servable.run(signature_name, arrays, max_batch_size=server.max_batch_size)
    del arrays
    return _predict_outputs(outputs, row_format)


def _predict_inputs(server, name, version, label, body):
    payload = _parse_json(body)
    if not isinstance(payload, dict):
        raise invalid("request body must be a JSON object with 'instances' or 'inputs'")
    unknown = set(payload) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise invalid(f"unknown request key(s) {quote(sorted(unknown))}; expected signature_name and instances or "
                      "inputs")
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
            raise invalid(f"input tensor alias not found in signature {signature_name}: {quote(key)}. Inputs expected "
                          f"to be in the set {{{','.join(sorted(sig.inputs))}}}.")
        arrays[key] = _from_json(key, value, dtypes[key])
    return servable, signature_name, arrays, row_format


def _predict_outputs(outputs, row_format):
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


# ----------------------------------------------------------------------------- the HTTP server

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable", 504: "Gateway Timeout"}
MAX_HEADER_BYTES = 64 * 1024


def _route(method, target):
    path = target.split("?", 1)[0]
    match = _REST_PATH.match(path)
    if not match:
        raise not_found(f"Malformed request: {method} {quote(path)}; expected /v1/models/<name>"
                        "[/versions/<version>|/labels/<label>][:predict|/metadata]")
    return match.group("name"), match.group("version"), match.group("label"), match.group("suffix")


def handle_request(server, method, target, body):
    """``(HTTP status, JSON payload)`` of one request (runs on a worker thread)."""
    try:
        name, version, label, suffix = _route(method, target)
        if method == "GET":
            if suffix not in (None, "/metadata"):
                raise invalid(f"{suffix} needs POST")
            return 200, _rest_get(server, name, version, label, suffix)
        if method != "POST":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"method {quote(method)} is not supported; use GET "
                                                              "or POST")
        if suffix != ":predict":
            raise invalid(f"only :predict is supported for POST (got {suffix or 'no verb'})")
        return 200, rest_predict(server, name, version, label, body)
    except ServingError as e:
        return HTTP_STATUS.get(e.code, 500), {"error": e.message}
    except Exception as e:  # never let a request take the server down
        logging.exception("Internal error")
        error = ServingError(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}: {e}")
        return 500, {"error": error.message}


class RestServer:
    """TF Serving's REST API on an asyncio event loop (its own thread) with h11; see the module doc."""

    def __init__(self, server, host, port, backlog=1024, max_connections=1000, workers=8, queue=256,
                 request_timeout=30.0, idle_timeout=60.0, write_timeout=30.0, max_inflight_bytes=256 * 2 ** 20):
        self.server, self.host = server, host
        self.backlog, self.max_connections = backlog, max_connections
        self.workers, self.queue = workers, queue
        self.request_timeout, self.idle_timeout, self.write_timeout = request_timeout, idle_timeout, write_timeout
        self.pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tfvrec-rest")
        self.connections = 0
        self.in_flight = 0
        self.max_inflight_bytes = max(max_inflight_bytes, server.max_request_bytes)
        self.inflight_bytes = 0
        self.stats = {"connections": 0, "rejected_connections": 0, "rejected_requests": 0, "timeouts": 0,
                      "requests": 0}
        _raise_fd_limit(max_connections + 256)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(port,), name="tfvrec-rest", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    @property
    def server_address(self):
        return self._server.sockets[0].getsockname()[:2]

    def _run(self, port):
        asyncio.set_event_loop(self.loop)
        try:
            self._server = self.loop.run_until_complete(asyncio.start_server(
                self._connection, self.host, port, backlog=self.backlog, reuse_address=True, limit=2 ** 16))
        except OSError as e:
            self._error = OSError(f"cannot bind REST to {self.host}:{port} ({e.strerror or e}); choose another "
                                  "--rest_port")
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        # Stopped: end every open connection (their writers close with the loop still open).
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def shutdown(self):
        def stop():
            self._server.close()
            self.loop.stop()
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(stop)
            self._thread.join(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- one connection ---------------------------------------------------------------------
    async def _connection(self, reader, writer):
        self.stats["connections"] += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.connections >= self.max_connections:
            self.stats["rejected_connections"] += 1
            await self._refuse(reader, writer, 503, f"server overloaded: {self.connections} open connections "
                                                    f"(at most {self.max_connections}); retry later")
            return
        self.connections += 1
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:  # never let one connection stop the loop
            logging.exception("REST connection failed")
        finally:
            self.connections -= 1
            if not writer.is_closing():
                writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass

    async def _refuse(self, reader, writer, status, message):
        """Answer outside h11's request cycle (no request read, or one h11 cannot parse), then close
        gracefully: write, shut the write side, drain what the client sent (a close with unread data
        would reset the connection)."""
        body = json.dumps({"error": message}).encode()
        head = (f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\nContent-Length: "
                f"{len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n").encode()
        try:
            writer.write(head + body)
            await asyncio.wait_for(writer.drain(), self.write_timeout)
            await self._linger(reader, writer)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def _linger(self, reader, writer, seconds=2.0, limit=2 ** 22):
        if writer.can_write_eof():
            writer.write_eof()
        drained = 0
        try:
            while drained < limit:
                data = await asyncio.wait_for(reader.read(65536), seconds)
                if not data:
                    break
                drained += len(data)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass

    async def _send(self, writer, conn, status, payload, close=False):
        body = json.dumps(payload).encode("utf-8")
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("Server", "tfvrec-serve")]
        if close:
            headers.append(("Connection", "close"))
        if status == 503:
            headers.append(("Retry-After", "1"))
        data = conn.send(h11.Response(status_code=status, headers=headers, reason=REASONS.get(status, "")))
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self.write_timeout)

    async def _serve(self, reader, writer):
        held = [0]  # body bytes this connection has reserved of max_inflight_bytes
        try:
            await self._requests(reader, writer, held)
        finally:
            self.inflight_bytes -= held[0]

    async def _requests(self, reader, writer, held):
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        limit = self.server.max_request_bytes
        while True:
            # -- read one request: headers and body within request_timeout of its first byte
            request, body, deadline = None, bytearray(), None
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as e:
                    await self._refuse(reader, writer, 400, f"malformed HTTP request: {quote(str(e))}")
                    return
                if event is h11.NEED_DATA:
                    if conn.they_are_waiting_for_100_continue:
                        writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
                    loop_time = self.loop.time()
                    if deadline is None and (request is not None or conn.trailing_data[0]):
                        deadline = loop_time + self.request_timeout
                    timeout = self.idle_timeout if deadline is None else max(0.0, deadline - loop_time)
                    try:
                        data = await asyncio.wait_for(reader.read(65536), timeout)
                    except asyncio.TimeoutError:
                        self.stats["timeouts"] += 1
                        if request is not None or deadline is not None:  # half a request: 408
                            if conn.our_state is h11.SEND_RESPONSE:
                                await self._send(writer, conn, 408, {"error": "request not received within "
                                                                     f"{self.request_timeout:g} s"}, close=True)
                        return
                    if deadline is None and data:
                        deadline = self.loop.time() + self.request_timeout
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.ConnectionClosed):
                    return
                if isinstance(event, h11.Request):
                    request = event
                    length = dict(event.headers).get(b"content-length")
                    if length is not None and length.isdigit() and int(length) > limit:
                        await self._send(writer, conn, 400, {"error": f"request of {int(length)} bytes exceeds the "
                                                             f"server's --max_request_bytes={limit}"}, close=True)
                        await self._linger(reader, writer)
                        return
                    continue
                if isinstance(event, h11.Data):
                    body += event.data
                    self.inflight_bytes += len(event.data)  # the bytes actually held (a stalled client holds few)
                    held[0] += len(event.data)
                    if self.inflight_bytes > self.max_inflight_bytes:
                        self.stats["rejected_requests"] += 1
                        await self._send(writer, conn, 503, {"error": "server overloaded: the request bodies held "
                                                             f"at once exceed {self.max_inflight_bytes} bytes; retry "
                                                             "later"}, close=True)
                        await self._linger(reader, writer)
                        return
                    if len(body) > limit:
                        await self._send(writer, conn, 400, {"error": f"request body exceeds the server's "
                                                             f"--max_request_bytes={limit}"}, close=True)
                        await self._linger(reader, writer)
                        return
                    continue
                if isinstance(event, h11.EndOfMessage):
                    break
            # -- answer it, on the pool (at most workers running, queue waiting)
            self.stats["requests"] += 1
            method, target = request.method.decode("ascii", "replace"), request.target.decode("utf-8", "replace")
            if self.in_flight >= self.workers + self.queue:
                self.stats["rejected_requests"] += 1
                status, payload = 503, {"error": f"server overloaded: {self.in_flight} requests in flight (at most "
                                                 f"{self.workers} running and {self.queue} queued); retry later"}
            else:
                self.in_flight += 1
                try:
                    status, payload = await self.loop.run_in_executor(self.pool, handle_request, self.server, method,
                                                                      target, bytes(body))
                finally:
                    self.in_flight -= 1
            del body
            await self._send(writer, conn, status, payload)
            del payload
            self.inflight_bytes -= held[0]
            held[0] = 0
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return


def _raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def start_rest(server, host, port, **limits):
    """Start the REST server; returns ``(server, bound port)``."""
    rest = RestServer(server, host, port, **limits)
    return rest, rest.server_address[1]
