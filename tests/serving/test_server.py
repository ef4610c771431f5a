"""``tfvrec serve`` (issue 6): TF Serving's gRPC API (official stubs) and REST form, version swaps, bad requests."""
import copy
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from tfvrec.serving import export
from tfvrec.serving import versions as versions_lib
from tfvrec.serving.model_config import update_models_config
from tfvrec.serving.server import launch

from conftest import REPO
from test_export import assert_same_top_k, reference_top_k, tiny_export, tiny_model

MAX_REQUEST_BYTES = 20000
MAX_BATCH = 64
MAX_CONNECTIONS = 64
REQUEST_TIMEOUT = 3


def start_server(config_file, *extra, timeout=180):
    """``tfvrec serve`` in a fresh process on free ports (`tfvrec.serving.server.launch`); returns
    (process, grpc port, rest port)."""
    server = launch.start(config_file, extra=extra, poll_seconds=0.3, timeout=timeout, cwd=REPO)
    return server.process, server.grpc_port, server.rest_port


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The session's exports (version 1 of bpr, bpr_scann, curatornet, hasc) served by ``tfvrec serve``."""
    root = tmp_path_factory.mktemp("export")
    models = {}
    for name, model, index in (("bpr", "bpr", "brute_force"), ("bpr_scann", "bpr", "scann"),
                               ("curatornet", "curatornet", "brute_force"), ("hasc", "hasc", "brute_force")):
        info = tiny_export(tmp_path_factory, model, index)
        shutil.copytree(info["path"], root / "models" / name / "1")
        update_models_config(str(root / "models.config"), name, str(root / "models" / name))
        config = copy.deepcopy(tiny_model(tmp_path_factory, model)[0])
        export.apply_export_overrides(config, index=index)
        models[name] = (config, *tiny_model(tmp_path_factory, model)[1:])
    proc, grpc_port, rest_port = start_server(str(root / "models.config"), "--max_request_bytes",
                                              str(MAX_REQUEST_BYTES), "--max_batch_size", str(MAX_BATCH),
                                              "--rest_max_connections", str(MAX_CONNECTIONS),
                                              "--rest_request_timeout", str(REQUEST_TIMEOUT))
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    config, dataset, model = models["bpr"]
    yield {"root": root, "config": config, "dataset": dataset, "model": model, "models": models, "proc": proc,
           "grpc_port": grpc_port, "rest": f"http://127.0.0.1:{rest_port}", "channel": channel,
           "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
           "status": model_service_pb2_grpc.ModelServiceStub(channel)}
    channel.close()
    proc.terminate()
    proc.wait(timeout=30)


def predict_request(model="bpr", signature="", version=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def rest(setup, path, payload=None, method=None, raw=None):
    """``(HTTP status, JSON body)`` of a REST call."""
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    request = urllib.request.Request(setup["rest"] + path, data=data, method=method or ("POST" if data else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("name", ["bpr", "bpr_scann", "curatornet", "hasc"])
def test_grpc_stub_and_rest_agree_with_the_in_memory_model(setup, name):
    """The server (a fresh process that loaded the export) answers as the in-memory model does."""
    config, dataset, model = setup["models"][name]
    users = np.arange(8)
    user_ids = [str(u) for u in np.asarray(dataset.user_ids, str)[users]]
    ref_ids, ref_scores = reference_top_k(model, dataset, users, 10, config=config)
    response = setup["predict"].Predict(predict_request(name, user=np.array(user_ids, object), k=np.int32(10)),
                                        timeout=60)
    assert response.model_spec.name == name and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    grpc_ids = tf.make_ndarray(response.outputs["item_ids"]).astype(str)
    grpc_scores = tf.make_ndarray(response.outputs["scores"])
    assert_same_top_k(grpc_ids, grpc_scores, ref_ids, ref_scores)
    # REST row format (k from the signature default, 10) and columnar format give the same answer.
    status, rows = rest(setup, f"/v1/models/{name}:predict", {"instances": [{"user": u} for u in user_ids]})
    assert status == 200
    np.testing.assert_array_equal([r["item_ids"] for r in rows["predictions"]], grpc_ids)
    np.testing.assert_allclose([r["scores"] for r in rows["predictions"]], grpc_scores, rtol=1e-6)
    status, columns = rest(setup, f"/v1/models/{name}/versions/1:predict", {"inputs": {"user": user_ids, "k": 10}})
    assert status == 200
    np.testing.assert_array_equal(columns["outputs"]["item_ids"], grpc_ids)


def test_cold_start_score_and_explain_agree_across_protocols(setup):
    dataset, model = setup["dataset"], setup["model"]
    user_ids = [str(u) for u in np.asarray(dataset.user_ids, str)[:2]]
    users = np.arange(2)
    # Cold start and the score signature agree across protocols too.
    profile = [["i0", "i3"], ["i5", ""]]
    response = setup["predict"].Predict(predict_request(profile=np.array(profile, object), k=np.int32(5)))
    status, body = rest(setup, "/v1/models/bpr:predict", {"inputs": {"profile": profile, "k": 5}})
    assert status == 200
    grpc_ids = tf.make_ndarray(response.outputs["item_ids"]).astype(str)
    np.testing.assert_array_equal(body["outputs"]["item_ids"], grpc_ids)
    items = np.array([["i1", "i2", "i3"]] * 2, object)
    response = setup["predict"].Predict(predict_request(signature="score", user=np.array(user_ids[:2], object),
                                                        items=items))
    status, body = rest(setup, "/v1/models/bpr:predict", {"signature_name": "score",
                                                         "inputs": {"user": user_ids[:2], "items": items.tolist()}})
    expected = model.score(users[:2], np.array([[1, 2, 3]] * 2))
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["scores"]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(body["outputs"], expected, rtol=1e-5, atol=1e-6)
    # HASC's explain signature: same answer in both forms, row format included.
    hasc_users = np.asarray(setup["models"]["hasc"][1].user_ids, str)[:3].tolist()
    hasc_items = np.asarray(setup["models"]["hasc"][1].item_ids, str)[:3].tolist()
    response = setup["predict"].Predict(predict_request("hasc", signature="explain",
                                                        user=np.array(hasc_users, object),
                                                        item=np.array(hasc_items, object)))
    status, body = rest(setup, "/v1/models/hasc:predict", {"signature_name": "explain", "instances": [
        {"user": u, "item": i} for u, i in zip(hasc_users, hasc_items)]})
    assert status == 200 and len(body["predictions"]) == 3
    np.testing.assert_allclose([p["aspects"] for p in body["predictions"]],
                               tf.make_ndarray(response.outputs["aspects"]), rtol=1e-6)
    np.testing.assert_array_equal([p["uploads"] for p in body["predictions"]],
                                  tf.make_ndarray(response.outputs["uploads"]).astype(str))
    with pytest.raises(grpc.RpcError) as error:  # a bounded list, not an allocation the client picks
        setup["predict"].Predict(predict_request("hasc", signature="explain", user=np.array(hasc_users, object),
                                                 item=np.array(hasc_items, object), top=np.int32(10 ** 6)))
    assert error.value.code() == INVALID and "top must be between 1 and 100" in error.value.details()


def test_metadata_and_status(setup):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "bpr"
    response = setup["predict"].GetModelMetadata(request)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert {"serving_default", "score"} <= set(signatures.signature_def)
    assert set(signatures.signature_def["serving_default"].outputs) == {"item_ids", "scores"}
    status, body = rest(setup, "/v1/models/bpr/metadata")
    assert status == 200 and "serving_default" in body["metadata"]["signature_def"]["signature_def"]
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "bpr"
    versions = setup["status"].GetModelStatus(request).model_version_status
    assert [(v.version, v.state) for v in versions] == [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    assert rest(setup, "/v1/models/bpr") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})


INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
USER = np.array(["u1"], object)
GRPC_BAD_REQUESTS = [
    ("unknown model", predict_request("nope", user=USER), NOT_FOUND, "Servable not found"),
    ("unknown version", predict_request(version=99, user=USER), NOT_FOUND, "Specific(bpr, 99)"),
    ("unknown signature", predict_request(signature="nope", user=USER), INVALID, 'signature key "nope" not found'),
    ("unknown input", predict_request(user=USER, users=USER), INVALID, "Sent extra: ['users']"),
    ("missing required input", predict_request(signature="score", user=USER), INVALID,
     "Missing but required: ['items']"),
    ("wrong dtype", predict_request(user=np.array([1], np.int64)), INVALID, "expects dtype string, got int64"),
    ("wrong k dtype", predict_request(user=USER, k=np.int64(3)), INVALID, "expects dtype int32, got int64"),
    ("wrong shape", predict_request(user=np.array([["u1"]], object)), INVALID, "expects shape [?], got [1, 1]"),
    ("k not a scalar", predict_request(user=USER, k=np.array([3], np.int32)), INVALID, "expects shape [], got [1]"),
    ("unknown user id", predict_request(user=np.array(["u1", "ghost"], object)), INVALID,
     "unknown user id(s), not in this export (for a new user send a cold-start profile instead): ghost"),
    ("K too large", predict_request(user=USER, k=np.int32(91)), INVALID, "k must be between 1 and max_k=90"),
    ("K zero", predict_request(user=USER, k=np.int32(0)), INVALID, "got k = 0"),
    ("two queries", predict_request(user=USER, profile=np.array([["i1"]], object)), INVALID,
     "send exactly one non-empty query input: user or profile"),
    ("unknown profile item", predict_request(profile=np.array([["i1", "ghost"]], object)), INVALID,
     "unknown item id(s) in profile, not in this export catalogue: ghost"),
    ("unknown scored item", predict_request(signature="score", user=USER, items=np.array([["ghost"]], object)),
     INVALID, "unknown item id(s) in items"),
    ("batch too large", predict_request(user=np.array(["u1"] * (MAX_BATCH + 1), object)), INVALID,
     f"--max_batch_size={MAX_BATCH}"),
    ("oversized payload", predict_request(profile=np.array([["i1" * 500] * 20], object)), INVALID,
     f"--max_request_bytes={MAX_REQUEST_BYTES}"),
]


@pytest.mark.parametrize("request_, code, message", [c[1:] for c in GRPC_BAD_REQUESTS],
                         ids=[c[0] for c in GRPC_BAD_REQUESTS])
def test_bad_grpc_requests(setup, request_, code, message):
    with pytest.raises(grpc.RpcError) as error:
        setup["predict"].Predict(request_, timeout=60)
    assert error.value.code() == code
    assert message in error.value.details()


def test_bad_status_metadata_and_malformed_requests(setup):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as error:
        setup["status"].GetModelStatus(request)
    assert error.value.code() == NOT_FOUND
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["nope"])
    request.model_spec.name = "bpr"
    with pytest.raises(grpc.RpcError) as error:
        setup["predict"].GetModelMetadata(request)
    assert error.value.code() == INVALID and "not supported" in error.value.details()
    garbage = setup["channel"].unary_unary("/tensorflow.serving.PredictionService/Predict",
                                           request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as error:
        garbage(b"\xff\xff\xff not a protobuf")
    assert error.value.code() == INVALID and "malformed PredictRequest" in error.value.details()
    filtered = predict_request(user=USER)
    filtered.output_filter.append("nope")
    with pytest.raises(grpc.RpcError) as error:
        setup["predict"].Predict(filtered)
    assert error.value.code() == INVALID and "output tensor alias not found" in error.value.details()
    filtered = predict_request(user=USER)
    filtered.output_filter.append("item_ids")
    assert set(setup["predict"].Predict(filtered).outputs) == {"item_ids"}


REST_BAD_REQUESTS = [
    ("unknown model", "/v1/models/nope:predict", {"instances": [{"user": "u1"}]}, 404, "Servable not found"),
    ("unknown version", "/v1/models/bpr/versions/9:predict", {"instances": [{"user": "u1"}]}, 404, "Specific(bpr, 9)"),
    ("unknown signature", "/v1/models/bpr:predict", {"signature_name": "x", "inputs": {"user": ["u1"]}}, 400,
     'signature key "x" not found'),
    ("unknown input", "/v1/models/bpr:predict", {"inputs": {"usr": ["u1"]}}, 400, "input tensor alias not found"),
    ("wrong dtype", "/v1/models/bpr:predict", {"inputs": {"user": [1]}}, 400, "expects strings"),
    ("fractional k", "/v1/models/bpr:predict", {"inputs": {"user": ["u1"], "k": 2.5}}, 400, "expects int32 integers"),
    ("wrong shape", "/v1/models/bpr:predict", {"inputs": {"user": "u1"}}, 400, "expects shape [?], got []"),
    ("ragged", "/v1/models/bpr:predict", {"inputs": {"profile": [["i1"], ["i2", "i3"]]}}, 400, "not a rectangular"),
    ("unknown user id", "/v1/models/bpr:predict", {"instances": [{"user": "ghost"}]}, 400, "unknown user id(s)"),
    ("K too large", "/v1/models/bpr:predict", {"inputs": {"user": ["u1"], "k": 500}}, 400, "max_k=90"),
    ("no instances", "/v1/models/bpr:predict", {"signature_name": "score"}, 400, "exactly one of 'instances'"),
    ("bad path", "/v2/whatever", {"instances": []}, 404, "Malformed request"),
]


@pytest.mark.parametrize("path, payload, status, message", [c[1:] for c in REST_BAD_REQUESTS],
                         ids=[c[0] for c in REST_BAD_REQUESTS])
def test_bad_rest_requests(setup, path, payload, status, message):
    code, body = rest(setup, path, payload)
    assert code == status and message in body["error"]


def test_rest_oversized_and_invalid_json(setup):
    code, body = rest(setup, "/v1/models/bpr:predict", raw=b"{" + b" " * MAX_REQUEST_BYTES + b"}")
    assert code == 400 and f"--max_request_bytes={MAX_REQUEST_BYTES}" in body["error"]
    code, body = rest(setup, "/v1/models/bpr:predict", raw=b"{not json")
    assert code == 400 and "not valid JSON" in body["error"]
    assert setup["proc"].poll() is None and rest(setup, "/v1/models/bpr")[0] == 200  # still serving


def test_binds_loopback_only(setup):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent; picks the outward interface
        address = probe.getsockname()[0]
    except OSError:
        address = None
    finally:
        probe.close()
    if not address or address.startswith("127."):
        pytest.skip("no non-loopback interface on this machine")
    with pytest.raises(OSError):
        socket.create_connection((address, setup["grpc_port"]), timeout=5).close()
    socket.create_connection(("127.0.0.1", setup["grpc_port"]), timeout=5).close()


def test_new_version_is_swapped_in_without_failing_requests(setup):
    failures, versions, stop = [], set(), threading.Event()
    request = predict_request(user=np.array(["u1", "u2"], object), k=np.int32(5))

    def client():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(setup["channel"])
        while not stop.is_set():
            try:
                versions.add(stub.Predict(request, timeout=60).model_spec.version.value)
            except grpc.RpcError as e:
                failures.append(f"{e.code()}: {e.details()}")

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        # Publish version 2 as the exporter does, while the clients run: written aside, renamed into place.
        base = setup["root"] / "models" / "bpr"
        aside = base / (versions_lib.TMP_PREFIX + "2")
        shutil.copytree(base / "1", aside)
        os.rename(aside, base / "2")
        deadline = time.time() + 120
        while 2 not in versions and time.time() < deadline and not failures:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == [] and versions == {1, 2}
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "bpr"
    states = {v.version: v.state for v in setup["status"].GetModelStatus(status).model_version_status}
    state = get_model_status_pb2.ModelVersionStatus
    assert states == {1: state.END, 2: state.AVAILABLE}
    with pytest.raises(grpc.RpcError) as error:  # latest-1 policy: version 1 is gone
        setup["predict"].Predict(predict_request(version=1, user=USER))
    assert error.value.code() == NOT_FOUND


def test_models_added_to_the_config_file_are_served_without_a_restart(setup):
    base = setup["root"] / "models" / "bpr_copy"
    shutil.copytree(setup["root"] / "models" / "bpr" / "1", base / "1")
    update_models_config(str(setup["root"] / "models.config"), "bpr_copy", str(base))
    request = predict_request("bpr_copy", user=USER)
    deadline, answer = time.time() + 120, None
    while answer is None and time.time() < deadline:
        try:
            answer = setup["predict"].Predict(request, timeout=60)
        except grpc.RpcError as e:
            assert e.code() == NOT_FOUND, e.details()
            time.sleep(0.3)
    assert answer is not None and answer.model_spec.name == "bpr_copy"
    expected = setup["predict"].Predict(predict_request(user=USER))
    np.testing.assert_array_equal(tf.make_ndarray(answer.outputs["item_ids"]),
                                  tf.make_ndarray(expected.outputs["item_ids"]))


def test_tfserving_backend_runs_the_real_binary(setup, tmp_path):
    config_file = str(setup["root"] / "models.config")
    fake = tmp_path / "bin" / "tensorflow_model_server"
    fake.parent.mkdir()
    record = str(tmp_path / "argv.json")
    fake.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({record!r}, 'w'))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "tfvrec", "serve", "--backend", "tfserving", "--model_config_file",
                           config_file, "--port", "8600", "--rest_port", "8601"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.load(open(tmp_path / "argv.json")) == [
        "--port=8600", "--rest_api_port=8601", f"--model_config_file={config_file}",
        "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1"]
    assert "['bpr_scann'] use a ScaNN index" in proc.stderr  # stock TF Serving cannot load those
    env["PATH"] = str(tmp_path / "empty")
    proc = subprocess.run([sys.executable, "-m", "tfvrec", "serve", "--backend", "tfserving", "--model_config_file",
                           config_file], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no tensorflow_model_server on the PATH" in proc.stderr


# ----------------------------------------------------------------------------- issue 16: robustness

def test_error_text_is_bounded_and_grpc_status_does_not_overflow(setup):
    """A 15 kB unknown id: TF Serving's ~1 kB error text, INVALID_ARGUMENT over gRPC (not the
    RESOURCE_EXHAUSTED of a status header too large), a short REST body."""
    ghost = "g" * 15000
    with pytest.raises(grpc.RpcError) as error:
        setup["predict"].Predict(predict_request(user=np.array([ghost], object)), timeout=60)
    assert error.value.code() == INVALID and "unknown user id(s)" in error.value.details()
    assert len(error.value.details()) <= 1100
    code, body = rest(setup, "/v1/models/bpr:predict", {"inputs": {"user": [ghost]}})
    assert code == 400 and "unknown user id(s)" in body["error"] and len(body["error"]) <= 1100


MALFORMED_BODIES = [
    ("deep nesting", b"[" * 19000),
    ("deep nesting in an input", b'{"inputs": {"user": ' + b"[" * 5000 + b"]" * 5000 + b"}}"),
    ("list as signature name", b'{"signature_name": ["x"], "inputs": {"user": ["u1"]}}'),
    ("object as signature name", b'{"signature_name": {"a": 1}, "instances": [{"user": "u1"}]}'),
    ("mixed instances", b'{"instances": [{"user": "u1"}, 3]}'),
    ("empty instance", b'{"instances": [{}]}'),
    ("null body", b"null"),
    ("empty body", b""),
    ("not UTF-8", b"\xff\xfe{"),
    ("truncated", b'{"instances": [{"user": "u1"'),
    ("huge number", b'{"inputs": {"user": ["u1"], "k": 1' + b"0" * 5000 + b"}}"),
    ("NaN k", b'{"inputs": {"user": ["u1"], "k": NaN}}'),
    ("inputs a number", b'{"inputs": 5}'),
    ("b64 not a string", b'{"inputs": {"user": [{"b64": 5}]}}'),
]


@pytest.mark.parametrize("body", [b for _, b in MALFORMED_BODIES], ids=[n for n, _ in MALFORMED_BODIES])
def test_malformed_json_is_400_never_500(setup, body):
    code, answer = rest(setup, "/v1/models/bpr:predict", raw=body, method="POST")
    assert code == 400, answer
    assert len(answer["error"]) <= 1100


def _http(port, request, timeout=30):
    """Send raw bytes, return (status or None, error name or None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            return None, "reset"
        if not data:
            return None, "closed"
        return int(data.split(b" ", 2)[1]), None


def test_burst_of_200_connections_gets_answers_not_resets(setup):
    port = int(setup["rest"].rsplit(":", 1)[1])
    barrier = threading.Barrier(200)
    results = []
    body = json.dumps({"inputs": {"user": ["u1"], "k": 5}}).encode()
    request = (f"POST /v1/models/bpr:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body

    def client():
        barrier.wait()
        try:
            results.append(_http(port, request))
        except OSError as e:
            results.append((None, type(e).__name__))
    threads = [threading.Thread(target=client) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [error for _, error in results if error]
    statuses = {status for status, _ in results if status}
    assert errors == [] and statuses <= {200, 503} and 200 in statuses, (errors[:5], statuses)


def test_slow_and_half_sent_requests_are_timed_out_and_do_not_block_others(setup):
    port = int(setup["rest"].rsplit(":", 1)[1])
    slow = []
    for _ in range(30):  # half a request each, then silence
        conn = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT + 10)
        conn.sendall(b"POST /v1/models/bpr:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        slow.append(conn)
    started = time.time()
    assert rest(setup, "/v1/models/bpr:predict", {"inputs": {"user": ["u1"]}})[0] == 200  # not blocked
    assert time.time() - started < REQUEST_TIMEOUT
    answers = []
    for conn in slow:
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        answers.append(data.split(b"\r\n", 1)[0])
        conn.close()
    assert time.time() - started < REQUEST_TIMEOUT + 10
    assert set(answers) == {b"HTTP/1.1 408 Request Timeout"}


def test_connections_over_the_cap_are_answered_503(setup):
    port = int(setup["rest"].rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(MAX_CONNECTIONS)]
    try:
        for conn in idle:  # each in the middle of a request: none idle, so none is closed to make room
            conn.sendall(b"GET /v1/models/bpr HTTP/1.1\r\n")
        time.sleep(0.5)  # (let the server accept them all)
        status, error = _http(port, b"GET /v1/models/bpr HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (status, error) == (503, None)
    finally:
        for conn in idle:
            conn.close()
    deadline = time.time() + 10
    while time.time() < deadline and _http(port, b"GET /v1/models/bpr HTTP/1.1\r\nHost: x\r\n\r\n")[0] != 200:
        time.sleep(0.2)
    assert _http(port, b"GET /v1/models/bpr HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200


def _status(setup, name):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return {v.version: (v.state, v.status.error_message)
            for v in setup["status"].GetModelStatus(request).model_version_status}


def test_version_copied_in_non_atomically_is_retried_and_corrupt_one_never_serves(setup):
    """A version whose variables were still being copied when it was first seen fails to load; it is
    retried once its files settle (its directory's mtime never changed). A corrupt version fails and
    the previous version keeps serving."""
    source = setup["root"] / "models" / "curatornet" / "1"
    base = setup["root"] / "models" / "curatornet"
    state = get_model_status_pb2.ModelVersionStatus
    user = np.array([str(setup["models"]["curatornet"][1].user_ids[0])], object)
    aside = setup["root"] / "aside"
    shutil.copytree(source, aside / "3")
    (aside / "3" / "saved_model.pb").write_bytes(b"\x08\x01garbage" * 100)
    corrupt = base / "3"
    os.rename(aside / "3", corrupt)
    deadline = time.time() + 120
    while time.time() < deadline and _status(setup, "curatornet").get(3, (None,))[0] != state.END:
        time.sleep(0.3)
    assert _status(setup, "curatornet")[3][0] == state.END and _status(setup, "curatornet")[1][0] == state.AVAILABLE
    answer = setup["predict"].Predict(predict_request("curatornet", user=user), timeout=60)
    assert answer.model_spec.version.value == 1  # still served by version 1
    shutil.rmtree(corrupt)
    # Version 4: every file in place, but the variables' data cut short (a copy in progress).
    shutil.copytree(source, aside / "4")
    data_file = next((aside / "4" / "variables").glob("variables.data-*"))
    full = data_file.read_bytes()
    with open(data_file, "r+b") as f:
        f.truncate(len(full) // 2)
    partial = base / "4"
    os.rename(aside / "4", partial)
    data_file = partial / "variables" / data_file.name
    stamp = os.path.getmtime(partial)
    deadline = time.time() + 120
    while time.time() < deadline and _status(setup, "curatornet").get(4, (None,))[0] != state.END:
        time.sleep(0.3)
    assert _status(setup, "curatornet")[4][0] == state.END
    with open(data_file, "r+b") as f:  # the copy finishes: same entries, so the directory's mtime is unchanged
        f.write(full)
    assert os.path.getmtime(partial) == stamp
    deadline = time.time() + 120
    while time.time() < deadline and _status(setup, "curatornet").get(4, (None,))[0] != state.AVAILABLE:
        time.sleep(0.3)
    assert _status(setup, "curatornet")[4][0] == state.AVAILABLE
    answer = setup["predict"].Predict(predict_request("curatornet", user=user), timeout=60)
    assert answer.model_spec.version.value == 4
