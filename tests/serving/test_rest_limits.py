"""The REST front end's limits, in process (no model needed): bodies held at once, the connection cap,
keep-alive, and answers instead of resets."""
import socket
import time

import pytest

from tfvrec.serving.server.rest_api import RestServer


class NoModels:
    """Just enough of a ModelServer for requests that never reach a model."""
    max_request_bytes = 600
    max_batch_size = 10
    managers = {}

    def manager(self, name):
        from tfvrec.serving.server.errors import not_found
        raise not_found(f"Servable not found for request: Latest({name})")

    def status(self, request):
        return self.manager(request.model_spec.name)

    metadata = status


def wait_until(predicate, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def read_status(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data else None


@pytest.fixture
def rest():
    server = RestServer(NoModels(), "127.0.0.1", 0, max_connections=4, workers=1, queue=1, request_timeout=5,
                        idle_timeout=5, max_inflight_bytes=1000)
    yield server, server.server_address[1]
    server.shutdown()


def test_bodies_held_at_once_are_bounded(rest):
    server, port = rest
    head = b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 600\r\n\r\n"
    first = socket.create_connection(("127.0.0.1", port), timeout=10)
    first.sendall(head + b"[" * 550)
    assert wait_until(lambda: server.inflight_bytes == 550)
    second = socket.create_connection(("127.0.0.1", port), timeout=10)
    second.sendall(head + b"[" * 550)
    assert read_status(second) == 503  # over the 1000 bytes held at once: answered, not reset
    second.close()
    assert wait_until(lambda: server.inflight_bytes == 550)  # what the refused request held is released
    first.sendall(b"[" * 50)
    assert read_status(first) == 400  # (the request itself gets its answer: not JSON)
    first.close()
    assert wait_until(lambda: server.inflight_bytes == 0)


def test_connection_cap_answers_503_and_keep_alive_works(rest):
    server, port = rest
    kept = socket.create_connection(("127.0.0.1", port), timeout=10)
    for _ in range(3):  # three requests on one keep-alive connection
        kept.sendall(b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_status(kept) == 404
    others = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    assert wait_until(lambda: server.connections == 4)
    extra = socket.create_connection(("127.0.0.1", port), timeout=10)
    extra.sendall(b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_status(extra) == 503
    assert extra.recv(1) == b""  # closed after the answer, gracefully
    for conn in [kept, extra, *others]:
        conn.close()
    assert server.stats["rejected_connections"] == 1


def test_malformed_http_is_400(rest):
    _, port = rest
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert read_status(conn) == 400
