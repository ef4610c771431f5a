"""docs/adding_a_model.md, proven: a toy model from a fixture folder, added as the guide says — one folder under
tfvrec/models/ and the three files it names outside it — trains, evaluates, exports and recommends through the CLI
of a scratch copy of the repository, with no other file changed."""
import os
import re
import shutil
import subprocess
import sys

from conftest import REPO

FIXTURE = os.path.join(REPO, "tests", "fixtures", "toy_model")


def test_the_guide_names_the_files_the_toy_model_adds():
    added = sorted(os.path.relpath(os.path.join(d, f), FIXTURE) for d, _, files in os.walk(FIXTURE) for f in files
                   if not f.endswith(".pyc"))
    outside = [path for path in added if not path.startswith(os.path.join("tfvrec", "models", "toy") + os.sep)]
    assert outside == ["configs/toy_synthetic.yaml", "docs/models/toy.md", "tests/models/toy/test_toy.py"]
    guide = open(os.path.join(REPO, "docs", "adding_a_model.md"), encoding="utf-8").read()
    for path in outside:
        assert re.sub("toy", "<name>", path) in guide, path
    assert "three files outside it" in guide


def test_a_toy_model_trains_evaluates_exports_and_recommends_through_the_cli(tmp_path):
    copy = tmp_path / "repo"
    for part in ("tfvrec", "configs"):
        shutil.copytree(os.path.join(REPO, part), copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(FIXTURE, copy, dirs_exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(copy))

    def tfvrec(*args):
        result = subprocess.run([sys.executable, "-m", "tfvrec", *args], cwd=str(copy), env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"tfvrec {args[0]}: {result.stderr[-3000:]}"
        return result.stdout

    run, export = str(tmp_path / "run"), str(tmp_path / "export" / "models" / "toy")
    sets = ["--set", f"runtime.model_dir={run}", "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set",
            "trainer.verbose=0"]
    out = tfvrec("train", "--config", "toy_synthetic", *sets)
    assert "| toy" in out and "| popularity" in out
    assert "sampled:100" in tfvrec("evaluate", "--run", run)
    tfvrec("export", "--run", run, "--out", export)
    assert os.path.exists(os.path.join(export, "1", "saved_model.pb"))
    user = open(os.path.join(str(tmp_path / "cache"), sorted(os.listdir(tmp_path / "cache"))[0], "users.tsv")
                ).read().splitlines()[1]
    assert len(tfvrec("recommend", "--run", run, "--user", user, "-k", "3", "--json").split('"item"')) == 4
    # The toy model's own test runs in the copy too.
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/models/toy"],
                            cwd=str(copy), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
