"""The command line: every command has --help; data synth / validate work end to end."""
import subprocess
import sys

import pytest

from tfvrec.cli import build_parser
from tfvrec.data.dataset import load_dataset

from conftest import REPO


@pytest.mark.parametrize("command", [["train"], ["evaluate"], ["data", "import"], ["data", "validate"],
                                     ["data", "synth"], ["features"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(command + ["--help"])
    assert e.value.code == 0
    assert "usage: tfvrec " + " ".join(command) in capsys.readouterr().out


def test_data_synth_then_validate(tmp_path):
    out = tmp_path / "world"
    run = subprocess.run([sys.executable, "-m", "tfvrec", "data", "synth", "--out", str(out),
                          "--set", "num_users=120", "--set", "num_items=240", "--set", "num_creators=20"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert load_dataset(str(out)).num_users == 120
    run = subprocess.run([sys.executable, "-m", "tfvrec", "data", "validate", str(out)], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "users 120" in run.stdout and "features/pixels" in run.stdout
    run = subprocess.run([sys.executable, "-m", "tfvrec", "data", "synth", "--out", str(out)], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 2 and "already exists" in run.stderr and "Traceback" not in run.stderr
