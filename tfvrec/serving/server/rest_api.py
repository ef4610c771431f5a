"""REST front end: TF Serving's ``/v1/models/...`` API (``:predict`` in row or columnar format,
status, metadata) and its JSON encoding of tensors.

The HTTP server is asyncio with `h11 <https://github.com/python-hyper/h11>`_ for HTTP/1.1
(the sans-I/O parser httpcore and uvicorn use; pure Python, no dependencies): one event
loop holds every connection, so slow or idle clients cost a socket, not a thread, and
the request work runs on a bounded pool. Limits, as TF Serving's REST server keeps them:

- a listen backlog (``backlog``), so a burst of connections queues instead of being reset;
- at most ``max_connections`` open connections; when they are all open, the connection idle the
  longest is closed to make room: a keep-alive connection between two requests, or one that has
  sent nothing for ``EVICT_IDLE_SECONDS`` since it opened. Only when none is idle is a new
  connection answered ``503`` (and closed gracefully, never reset). So a flood of keep-alive
  clients cannot lock new clients out, and a burst of new connections is not cut off before it
  sends its requests;
- per-connection read timeouts: a request must arrive within ``request_timeout`` seconds
  (a client sending half a request gets ``408`` and is closed), an idle keep-alive
  connection is closed after ``idle_timeout``;
- at most ``workers`` requests run at once and ``queue`` more wait; past that ``503``;
- bodies over ``max_request_bytes`` are refused before they are read (``400``), and what
  requests hold at once adds up to at most ``max_inflight_bytes``: their bodies (counted as
  they arrive, so a stalled client holds little), the memory decoding each one will take
  (`decoded_cost`, an upper bound from the body's structure, reserved before the JSON is
  parsed: a body of short strings may take ~23× its size as Python objects) and the answers
  being sent. A request that does not fit is answered ``503``; one whose decoded form alone is
  larger than the whole budget ``413``. A body is kept as the chunks it arrived in (nothing
  reallocated as it grows), joined once into a buffer that is emptied when decoded to text, the
  text dropped once parsed, the inputs become arrays without a second copy of the JSON, and
  freed memory is handed back to the system after a large request (``malloc_trim``), so
  sequential large requests do not pile up.
"""
import asyncio
import ctypes
import ctypes.util
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


MAX_INPUT_RANK = 32  # nesting of one input's JSON arrays (a tensor's rank)


def _b64(key, value):
    import base64
    if set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise invalid(f"input {key}: a JSON object in a string input must be {{\"b64\": \"...\"}}, got {quote(value)}")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (ValueError, TypeError):
        raise invalid(f"input {key}: invalid base64 in {quote(value)}") from None


def _check_leaf(key, v, dtype):
    if dtype == tf.string:
        if not isinstance(v, (str, bytes)):
            raise invalid(f"input {key}: expects strings, got JSON {type(v).__name__} {quote(v)}")
        if isinstance(v, str) and not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise invalid(f"input {key}: a string that is not valid UTF-8 (a lone surrogate escape)") from None
        return
    if dtype == tf.bool:
        if not isinstance(v, bool):
            raise invalid(f"input {key}: expects booleans, got JSON {type(v).__name__} {quote(v)}")
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise invalid(f"input {key}: expects {dtype.name} numbers, got JSON {type(v).__name__} {quote(v)}")
    if dtype.is_integer and not (isinstance(v, int) or float(v).is_integer()):
        raise invalid(f"input {key}: expects {dtype.name} integers, got {quote(v)}")


def _check_value(key, value, dtype, depth=0):
    """The shape of a JSON input value, checking its kinds and that it is rectangular. Nothing is copied:
    ``{"b64": ...}`` objects of a string input are replaced by their bytes in place."""
    if not isinstance(value, list):
        _check_leaf(key, value, dtype)
        return ()
    if depth >= MAX_INPUT_RANK:
        raise invalid(f"input {key}: arrays nested more than {MAX_INPUT_RANK} deep")
    kinds = {type(v) for v in value}
    if list not in kinds and dict not in kinds:  # a row of scalars
        plain = (dtype.is_floating and kinds <= {float, int} or dtype.is_integer and kinds <= {int}
                 or dtype.is_bool and kinds <= {bool})
        if not plain:  # strings (each checked for UTF-8), or a wrong kind for the error to name
            for v in value:
                _check_leaf(key, v, dtype)
        return (len(value),)
    shape = None
    for n, v in enumerate(value):
        if isinstance(v, dict) and dtype == tf.string:
            value[n] = v = _b64(key, v)
        inner = _check_value(key, v, dtype, depth + 1)
        if shape is None:
            shape = inner
        elif inner != shape:
            raise invalid(f"input {key}: not a rectangular array (rows of different lengths or depths)")
    return (len(value),) + (shape or ())


def _from_json(key, value, dtype):
    """A JSON input value → numpy of the signature's dtype, checking kinds strictly. The decoded JSON is not
    copied into a second nested structure: a string input's array holds the very str objects json made."""
    if isinstance(value, dict) and dtype == tf.string:
        value = _b64(key, value)
    shape = _check_value(key, value, dtype)
    try:
        if dtype == tf.string:
            array = np.array(value, dtype=object)
            if array.shape != shape:  # (numpy stops at the first non-list: never for a checked value)
                raise ValueError(f"shape {array.shape} instead of {shape}")
        else:
            array = np.array(value, dtype=dtype.as_numpy_dtype)
    except (ValueError, OverflowError, TypeError) as e:
        raise invalid(f"input {key}: values do not fit {dtype.name} ({quote(str(e))})") from None
    return array


def _parse_json(body):
    """The JSON of a request body. A `bytearray` body is emptied once decoded to text, and the text is
    dropped once parsed: at most two forms of the request exist at once."""
    if not body.strip():
        raise invalid("request body is empty; expected a JSON object with 'instances' or 'inputs'")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise invalid(f"request body is not valid JSON: not UTF-8 ({quote(str(e))})") from None
    if isinstance(body, bytearray):
        body.clear()
    try:
        return json.loads(text)
    except RecursionError:  # (the C decoder counts its depth: no stack is at risk)
        raise invalid("request body nests JSON arrays or objects too deeply") from None
    except ValueError as e:
        raise invalid(f"request body is not valid JSON: {quote(str(e))}") from None
    finally:
        del text


def decoded_cost(body):
    """An upper bound, in bytes, of the memory answering a ``:predict`` body (bytes, or a list of its
    chunks) holds at its peak beyond the body itself: its text, the values ``json.loads`` builds and
    the arrays and tensors made of them.

    Counted from the body's structural bytes (C-speed passes, before anything is decoded) with
    CPython 3.11's 64-bit object sizes: every value position (after a comma or colon, or first in
    an array or object) at most a list slot grown by 1/8 (9 B) and a number object (32 B); every
    string a str header (80 B) and up to 4 bytes a character (non-ASCII text); every array or object
    104 B; then an 8-byte array element and a 40-byte tensor element each. ``tests/serving/
    test_rest_limits.py`` checks it against tracemalloc for the costliest shapes."""
    parts = body if isinstance(body, (list, tuple)) else [body]  # (a body, or the chunks it came in)

    def count(byte):
        return sum(part.count(byte) for part in parts)
    size = sum(len(part) for part in parts)
    lists, objects, quotes = count(b"["), count(b"{"), count(b'"')
    values = count(b",") + count(b":") + lists + objects + 1
    wide = 1 if all(part.isascii() for part in parts) else 4
    text = wide * size
    parsed = values * (9 + 32) + quotes // 2 * 80 + wide * size + (lists + objects) * 104
    arrays = values * (8 + 40) + size
    return text + parsed + arrays


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
        self.budget = _Budget(self.max_inflight_bytes)
        self._idle = {}  # connection token -> (its writer, since when), while it waits for a request
        self.stats = {"connections": 0, "rejected_connections": 0, "rejected_requests": 0, "timeouts": 0,
                      "requests": 0, "evicted_idle": 0}
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

    @property
    def inflight_bytes(self):
        """Bytes requests hold now (bodies, reserved decoding memory, answers being sent)."""
        return self.budget.held

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
        if self.connections >= self.max_connections and not self._evict_idle():
            self.stats["rejected_connections"] += 1
            await self._refuse(reader, writer, 503, f"server overloaded: {self.connections} open connections "
                                                    f"(at most {self.max_connections}), none idle; retry later")
            return
        self.connections += 1
        token = _Token()
        try:
            await self._serve(reader, writer, token)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:  # never let one connection stop the loop
            logging.exception("REST connection failed")
        finally:
            self._idle.pop(token, None)
            if not token.evicted:  # (an evicted connection was uncounted when it was closed)
                self.connections -= 1
            if not writer.is_closing():
                writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass

    def _evict_idle(self):
        """Close the connection idle the longest: between two requests, or silent for `EVICT_IDLE_SECONDS`
        since it opened; False if there is none."""
        now = self.loop.time()
        for token, (writer, since) in self._idle.items():  # (insertion order: the longest idle first)
            if token.served or now - since >= EVICT_IDLE_SECONDS:
                break
        else:
            return False
        del self._idle[token]
        token.evicted = True
        self.connections -= 1
        self.stats["evicted_idle"] += 1
        writer.close()  # (its read ends with EOF and the connection's task finishes on its own)
        return True

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
        await self._send_json(writer, conn, status, json.dumps(payload).encode("utf-8"), close)

    async def _send_json(self, writer, conn, status, body, close=False):
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

    async def _serve(self, reader, writer, token):
        held = [0]  # bytes this connection has reserved of max_inflight_bytes (its body, its answer)
        try:
            await self._requests(reader, writer, held, token)
        finally:
            self.budget.give(held[0])

    async def _requests(self, reader, writer, held, token):
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        limit = self.server.max_request_bytes
        while True:
            # -- read one request: headers and body within request_timeout of its first byte
            request, body, deadline = None, _Body(), None
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
                    if deadline is None:  # idle: the first to close when a new client needs the room
                        self._idle[token] = (writer, self.loop.time())
                    try:
                        data = await asyncio.wait_for(reader.read(65536), timeout)
                    except asyncio.TimeoutError:
                        self.stats["timeouts"] += 1
                        if request is not None or deadline is not None:  # half a request: 408
                            if conn.our_state is h11.SEND_RESPONSE:
                                await self._send(writer, conn, 408, {"error": "request not received within "
                                                                     f"{self.request_timeout:g} s"}, close=True)
                        return
                    finally:
                        self._idle.pop(token, None)
                    if token.evicted:
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
                    grown = body.append(event.data)
                    self.budget.take(grown, force=True)  # the bytes actually held (a stalled client holds few)
                    held[0] += grown
                    if self.budget.held > self.max_inflight_bytes:
                        self.stats["rejected_requests"] += 1
                        await self._send(writer, conn, 503, {"error": "server overloaded: the request bodies held "
                                                             f"at once exceed {self.max_inflight_bytes} bytes; retry "
                                                             "later"}, close=True)
                        await self._linger(reader, writer)
                        return
                    if body.size > limit:
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
                holder, body = [body], None  # (the worker takes the only reference, and frees it early)
                try:
                    status, payload, answer = await self.loop.run_in_executor(self.pool, self._answer, method,
                                                                              target, holder)
                finally:
                    self.in_flight -= 1
                held[0] += answer  # (reserved by the worker: the answer's bytes, until sent)
            del body
            await self._send_json(writer, conn, status, payload if isinstance(payload, bytes) else
                                  json.dumps(payload).encode("utf-8"))
            del payload
            self.budget.give(held[0])
            held[0] = 0
            token.served = True
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return


    def _answer(self, method, target, holder):
        """On a worker: ``(status, JSON answer bytes, bytes reserved for it)``. Decoding is admitted only
        when its `decoded_cost` fits the in-flight budget beside what other requests hold."""
        body = holder.pop()
        size = body.size
        # Decoding holds the body joined into one buffer (then its text, ...: see decoded_cost).
        cost = size + decoded_cost(body.chunks) if method == "POST" and size else 0
        large = max(cost, size) >= TRIM_AFTER_BYTES
        try:
            if cost > self.max_inflight_bytes:
                status, payload = 413, {"error": f"request of {size:,} bytes would take about {cost:,} bytes "
                                        "once decoded, more than the server holds for all requests at once "
                                        f"(--rest_max_inflight_bytes={self.max_inflight_bytes}); send fewer values "
                                        "per request"}
                cost = 0
            elif not self.budget.take(cost):
                self.stats["rejected_requests"] += 1
                status, payload = 503, {"error": f"server overloaded: decoding this request needs about {cost:,} "
                                        f"bytes and the requests in flight hold {self.budget.held:,} of "
                                        f"{self.max_inflight_bytes:,}; retry later"}
                cost = 0
            else:
                joined = body.join()  # (the chunks are dropped: a bytearray, emptied once decoded to text)
                status, payload = handle_request(self.server, method, target, joined)
                del joined
            body.chunks.clear()
            del body
            answer = json.dumps(payload).encode("utf-8")
            del payload
        finally:
            self.budget.give(cost)
        self.budget.take(len(answer), force=True)
        if large:
            _trim_memory()
        return status, answer, len(answer)


class _Body:
    """A request body as the chunks it arrived in: nothing is reallocated as it grows (a growing buffer is
    copied when moved, and many growing at once fragment the heap), and it is joined once, to be decoded."""
    __slots__ = ("chunks", "size")

    CHUNK_OVERHEAD = 64  # (a chunk object's header)

    def __init__(self):
        self.chunks, self.size = [], 0

    def append(self, data):
        """Add a chunk; returns the bytes it holds."""
        self.chunks.append(data)
        self.size += len(data)
        return len(data) + self.CHUNK_OVERHEAD

    def join(self):
        joined = bytearray().join(self.chunks)
        self.chunks.clear()
        return joined


class _Budget:
    """The bytes requests hold at once, shared by the event loop and the worker threads."""

    def __init__(self, limit):
        self.limit, self.held = limit, 0
        self._lock = threading.Lock()

    def take(self, n, force=False):
        with self._lock:
            if not force and self.held + n > self.limit:
                return False
            self.held += n
            return True

    def give(self, n):
        with self._lock:
            self.held -= n


class _Token:
    """One connection (a key of the idle table): ``served`` once it has had an answer; ``evicted`` once
    closed to make room."""
    __slots__ = ("evicted", "served")

    def __init__(self):
        self.evicted = self.served = False


TRIM_AFTER_BYTES = 8 * 2 ** 20
# A new connection that has sent nothing for this long may be closed to make room for another (sooner,
# it is a client of a burst about to send its request).
EVICT_IDLE_SECONDS = 1.0


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def _trim_memory():
    """Hand freed memory back to the system (glibc's ``malloc_trim``): after a large request the heap's
    free pages would otherwise stay resident, and sequential large requests pile up."""
    trim = getattr(_LIBC, "malloc_trim", None)  # (glibc only)
    if trim is not None:
        trim(0)


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
