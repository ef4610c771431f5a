"""Start ``tfvrec serve`` in its own process and read its ports: the one way tests and tools do it.

``tfvrec serve`` prints one line on stdout once every model present is loaded and both front ends
listen (`ready_line`, written by `tfvrec.serving.commands.serve`)::

    tfvrec serve: gRPC 127.0.0.1:41231, REST http://127.0.0.1:40117; bpr versions [1]

`start` runs the command with ``--port 0`` (and ``--rest_port 0``: any free ports), waits for that
line and returns a `Server` holding the process and both ports; a server that exits or stays silent
past ``timeout`` raises `ServerStartError` with the end of its log. The line's format and its parser
live here together, so the server and its callers cannot drift apart::

    from tfvrec.serving.server import launch
    with launch.start("export/models.config", extra=["--enable_batching"]) as server:
        channel = grpc.insecure_channel(server.grpc_target)

Imports nothing heavy: `tfvrec.serving.commands` prints through `ready_line`.
"""
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time

_READY = re.compile(r"^tfvrec serve: gRPC (?P<host>[^\s,;]+):(?P<grpc>\d+)"
                    r"(?:, REST http://(?P<rest_host>[^\s,;]+):(?P<rest>\d+))?; ")


def ready_line(host, grpc_port, rest_port, models):
    """The line ``tfvrec serve`` prints when it answers requests (``models``: what it serves, as text)."""
    rest = f", REST http://{host}:{rest_port}" if rest_port else ""
    return f"tfvrec serve: gRPC {host}:{grpc_port}{rest}; {models}"


def parse_ready_line(line):
    """``(grpc_port, rest_port or None)`` of a `ready_line`, None for any other line."""
    found = _READY.match(line)
    if not found:
        return None
    return int(found.group("grpc")), (int(found.group("rest")) if found.group("rest") else None)


class ServerStartError(RuntimeError):
    """``tfvrec serve`` exited, or printed no ready line in time; the message ends with its log."""


class Server:
    """A running ``tfvrec serve`` process (`start`): its ports and log; `stop` ends it."""

    def __init__(self, process, grpc_port, rest_port, log_path, host="127.0.0.1"):
        self.process, self.grpc_port, self.rest_port = process, grpc_port, rest_port
        self.log_path, self.host = log_path, host
        self.pid = process.pid

    @property
    def grpc_target(self):
        return f"{self.host}:{self.grpc_port}"

    @property
    def rest_url(self):
        return f"http://{self.host}:{self.rest_port}" if self.rest_port else None

    def running(self):
        return self.process.poll() is None

    def log_tail(self, chars=3000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-chars:]
        except OSError:
            return ""

    def stop(self, timeout=60):
        """SIGTERM, then SIGKILL after ``timeout`` s; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"Server(pid={self.pid}, grpc={self.grpc_port}, rest={self.rest_port})"


def serve_command(config_file=None, model_name=None, base_path=None, rest=True, host="127.0.0.1", poll_seconds=0.5,
                  extra=(), python=None):
    """The ``tfvrec serve`` command line `start` runs (free ports: ``--port 0``, ``--rest_port 0``)."""
    command = [python or sys.executable, "-m", "tfvrec", "serve"]
    if config_file is not None:
        command += ["--model_config_file", str(config_file)]
    if model_name is not None:
        command += ["--model_name", model_name, "--model_base_path", str(base_path)]
    command += ["--host", host, "--port", "0", "--poll_seconds", str(poll_seconds)]
    if rest:
        command += ["--rest_port", "0"]
    return command + [str(a) for a in extra]


def start(config_file=None, *, model_name=None, base_path=None, rest=True, host="127.0.0.1", poll_seconds=0.5,
          extra=(), log_path=None, timeout=180, cwd=None, env=None, python=None):
    """Start ``tfvrec serve`` on free ports; the `Server` once it has printed its ready line.

    ``config_file``: a model_config_list (or ``model_name`` + ``base_path``: one model); ``rest``: also
    the REST front end; ``extra``: more flags of ``tfvrec serve``; ``log_path``: where its stderr (and
    anything it prints after the ready line) goes (default: a file beside ``config_file``, else a
    temporary file); ``cwd``/``env``/``python``: of the child process.
    """
    if log_path is None:
        folder = os.path.dirname(os.path.abspath(config_file or base_path))
        log_path = os.path.join(folder, "serve.log") if os.access(folder, os.W_OK) else \
            tempfile.mkstemp(prefix="tfvrec-serve-", suffix=".log")[1]
    log = open(log_path, "a")
    command = serve_command(config_file, model_name, base_path, rest, host, poll_seconds, extra, python)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([process.stdout], [], [], 0.5)[0]:
                line = process.stdout.readline()
                ports = parse_ready_line(line)
                if ports is not None:
                    # Keep reading stdout into the log: a full pipe would block the server's prints.
                    threading.Thread(target=_drain, args=(process.stdout, log), daemon=True).start()
                    return Server(process, ports[0], ports[1], log_path, host)
                if line:
                    log.write(line)
                    log.flush()
                    continue
            if process.poll() is not None:
                break
        reason = f"exited with code {process.returncode}" if process.poll() is not None else \
            f"printed no ready line in {timeout:.0f} s"
    except BaseException:
        process.kill()
        process.wait()
        log.close()
        raise
    process.kill()
    process.wait()
    log.close()
    with open(log_path, errors="replace") as f:
        tail = f.read()[-3000:]
    raise ServerStartError(f"tfvrec serve {reason} ({' '.join(command[1:])}); its log {log_path}:\n{tail}")


def _drain(stream, log):
    try:
        for line in stream:
            log.write(line)
            log.flush()
    except (OSError, ValueError):
        pass
    finally:
        log.close()
