"""`tfvrec.serving.server.launch`: the one way tests and tools start ``tfvrec serve`` and read its ports.

Its success path is every server test's (tests/serving/test_server.py's fixture starts through it); here
the line it waits for, and a server that cannot start.
"""
import pytest

from tfvrec.serving.server import launch

from conftest import REPO


def test_the_ready_line_the_server_prints_is_the_one_start_reads():
    line = launch.ready_line("127.0.0.1", 41231, 40117, "bpr versions [1]; hasc versions [2]")
    assert line == ("tfvrec serve: gRPC 127.0.0.1:41231, REST http://127.0.0.1:40117; bpr versions [1]; "
                    "hasc versions [2]")
    assert launch.parse_ready_line(line + "\n") == (41231, 40117)
    assert launch.parse_ready_line(launch.ready_line("127.0.0.1", 8500, None, "m versions []")) == (8500, None)
    for other in ("", "W0000 tfvrec serve: gRPC 127.0.0.1:1; x", "tfvrec serve: warning: gRPC 1.2.3.4:5; x",
                  "tfvrec serve: exec tensorflow_model_server --port=8500"):
        assert launch.parse_ready_line(other) is None, other


def test_the_server_command_asks_for_free_ports():
    command = launch.serve_command("m.config", extra=["--enable_batching"], python="py")
    assert command[:4] == ["py", "-m", "tfvrec", "serve"]
    assert command[command.index("--port") + 1] == "0" and command[command.index("--rest_port") + 1] == "0"
    assert command[-1] == "--enable_batching"
    assert "--rest_port" not in launch.serve_command(model_name="m", base_path="b", rest=False)


def test_a_server_that_exits_raises_with_the_end_of_its_log(tmp_path):
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: 'm' base_path: ")  # cut short
    with pytest.raises(launch.ServerStartError) as error:
        launch.start(str(config), cwd=REPO, timeout=120)
    message = str(error.value)
    assert "exited with code" in message and str(tmp_path / "serve.log") in message
    assert "models.config" in message.split("its log")[1]  # the server's own complaint, from its log
