"""Export hygiene (issue 16): stale ``.tmp-*`` versions of killed exports are removed by the next export
(a running export's is kept); the models.config update leaves no lock file."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvrec.serving import versions
from tfvrec.serving.model_config import existing_versions, update_models_config


class TinyModule(tf.Module):
    index_kind = "brute_force"

    def __init__(self):
        super().__init__()
        self.weight = tf.Variable(2.0)
        self.signature_functions = {"serving_default": self.serve}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": x * self.weight}

    def warmup_requests(self):
        return [("serving_default", {"x": np.ones(2, np.float32)})]


def _killed_writer(base):
    """A child that starts a version as an export does (hidden dir, flock held) and is SIGKILLed."""
    code = (f"import fcntl, os, signal, tempfile\n"
            f"tmp = tempfile.mkdtemp(prefix={versions.TMP_PREFIX!r}, dir={str(base)!r})\n"
            "open(os.path.join(tmp, 'saved_model.pb'), 'wb').write(b'half')\n"
            "fd = os.open(tmp, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print(tmp, flush=True); os.kill(os.getpid(), signal.SIGKILL)\n")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL
    return child.stdout.strip()


def test_next_export_removes_killed_exports_and_keeps_a_running_one(tmp_path):
    base = tmp_path / "models" / "tiny"
    base.mkdir(parents=True)
    dead = _killed_writer(base)
    old = base / ".tmp-from-an-old-tfvrec"  # written before writers held locks
    old.mkdir()
    live = subprocess.Popen([sys.executable, "-c", (
        f"import fcntl, os, sys, tempfile\ntmp = tempfile.mkdtemp(prefix={versions.TMP_PREFIX!r}, dir={str(base)!r})\n"
        "fd = os.open(tmp, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX)\nprint(tmp, flush=True); sys.stdin.read()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        running = live.stdout.readline().strip()
        version, path = versions.write_version(TinyModule(), str(base))
        assert version == 1 and existing_versions(str(base)) == [1]
        assert not os.path.exists(dead) and not old.exists()
        assert os.path.isdir(running)  # a live writer's directory is never removed
    finally:
        live.stdin.close()
        live.wait()
    assert versions.clean_stale(str(base)) == [os.path.basename(running)]
    assert sorted(os.listdir(base)) == ["1"]


def test_without_flock_the_age_decides(tmp_path, monkeypatch):
    base = tmp_path / "m"
    (base / ".tmp-a").mkdir(parents=True)

    def no_flock(path):
        raise OSError(95, "Operation not supported")
    monkeypatch.setattr(versions, "_try_lock", no_flock)
    assert versions.clean_stale(str(base)) == []  # young: may belong to a running export elsewhere
    now = os.path.getmtime(base / ".tmp-a") + versions.STALE_SECONDS + 1
    assert versions.clean_stale(str(base), now=now) == [".tmp-a"]


def test_models_config_update_leaves_no_lock_file(tmp_path):
    config = tmp_path / "export" / "models.config"
    update_models_config(str(config), "a", str(tmp_path / "export" / "models" / "a"))
    update_models_config(str(config), "b", str(tmp_path / "export" / "models" / "b"))
    assert sorted(os.listdir(tmp_path / "export")) == ["models.config"]
    assert 'name: "a"' in config.read_text() and 'name: "b"' in config.read_text()


def test_failed_export_removes_its_own_directory(tmp_path):
    class Broken(TinyModule):
        def warmup_requests(self):
            raise RuntimeError("broken warm-up")
    base = tmp_path / "m"
    with pytest.raises(RuntimeError, match="broken warm-up"):
        versions.write_version(Broken(), str(base))
    assert os.listdir(base) == []
