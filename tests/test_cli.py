"""The command line: every command has --help; every user mistake is one paragraph and exit code 2."""
import os
import re
import socket
import subprocess
import sys

import pytest

import tfvrec
from tfvrec import cli
from tfvrec.cli import build_parser
from tfvrec.data.dataset import load_dataset

from conftest import REPO
from planted import planted_dataset

VERBS = ["train", "evaluate", "data", "features", "triplets", "export", "index", "serve", "recommend", "explain"]


@pytest.mark.parametrize("command", [["train"], ["evaluate"], ["data", "import"], ["data", "validate"],
                                     ["data", "synth"], ["features"], ["triplets"], ["export"], ["serve"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(command + ["--help"])
    assert e.value.code == 0
    assert "usage: tfvrec " + " ".join(command) in capsys.readouterr().out


def test_top_level_help_lists_every_verb_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for verb in VERBS:
        assert re.search(rf"^    {verb}\b", text, re.M), verb  # each verb on its own help line
    assert "exit codes" in text
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"tfvrec {tfvrec.__version__}"


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


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory):
    """Files for the table of bad invocations."""
    root = tmp_path_factory.mktemp("mistakes")
    data = planted_dataset(str(root / "data"))
    binary = root / "binary.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    a_file = root / "a_file"
    a_file.write_text("x\n")
    run = root / "run"
    run.mkdir()
    (run / "params.yaml").write_text("experiment: bpr\n")

    def broken(name, edit):
        path = root / name
        import shutil
        shutil.copytree(data, path)
        edit(path)
        return str(path)

    sets = ["--set", "data.source=directory", "--set", f"data.path={data}", "--set", f"runtime.model_dir={root}/r"]
    levels = "".join(f"    a{n}: &a{n} [" + ", ".join([f"*a{n - 1 if n > 1 else ''}"] * 9) + "]\n" for n in range(1, 9))
    (root / "bomb.yaml").write_text("experiment: bpr\ndata:\n  import_options:\n    a: &a [x, x, x, x, x, x, x, x, x]\n"
                                    + levels)  # ~0.6 KB, 9**9 strings once expanded
    (root / "twice.yaml").write_text("experiment: bpr\ntrainer:\n  epochs: 3\ntrainer:\n  epochs: 9\n")
    (root / "deep.yaml").write_text("trainer: " + "[" * 10_000 + "]" * 10_000 + "\n")
    os.mkfifo(root / "fifo.yaml")  # nobody writes it: opening it for reading would block
    return {
        "root": root, "data": data, "binary": str(binary), "a_file": str(a_file), "run": str(run), "sets": sets,
        "binary_table": broken("binary_table", lambda p: (p / "users.tsv").write_bytes(b"user\n\x00\x01\xff\n")),
        "bad_yaml": broken("bad_yaml", lambda p: (p / "dataset.yaml").write_text("name: [unclosed\n")),
        "truncated": broken("truncated", lambda p: (p / "interactions" / "train.tsv").write_bytes(
            (p / "interactions" / "train.tsv").read_bytes()[:-5])),
        "short_row": broken("short_row", lambda p: (p / "interactions" / "train.tsv").write_text(
            "user\titem\ttimestamp\nu1\ti1\t3\nu2\ti2\n")),
        "huge_id": broken("huge_id", lambda p: (p / "users.tsv").write_text("user\n" + "u" * 1_000_000 + "\n")),
    }


BPR = os.path.join(REPO, "configs", "bpr_synthetic.yaml")
# (name, argv builder, text the one-paragraph error must hold)
BAD_INVOCATIONS = [
    ("config is a directory", lambda m: ["train", "--config", str(m["root"])], "is a directory"),
    ("config is binary", lambda m: ["train", "--config", m["binary"]], "not a text (UTF-8) file"),
    ("unknown config name", lambda m: ["train", "--config", "bpr_synthtic"], "Did you mean 'bpr_synthetic'"),
    ("config alias bomb", lambda m: ["train", "--config", str(m["root"] / "bomb.yaml")],
     "bomb.yaml, line 4: anchor &a: anchors and aliases are not accepted"),
    ("config with a key twice", lambda m: ["train", "--config", str(m["root"] / "twice.yaml")],
     "twice.yaml, line 4: duplicate key 'trainer' (lines 2 and 4)"),
    ("config nested 10,000 deep", lambda m: ["train", "--config", str(m["root"] / "deep.yaml")],
     "deep.yaml, line 1: nested more than 32 levels deep"),
    ("config is a FIFO", lambda m: ["train", "--config", str(m["root"] / "fifo.yaml")],
     "fifo.yaml: is a FIFO (named pipe); expected a YAML config file (a regular file)"),
    ("--set alias", lambda m: ["train", "--config", BPR, "--set", "data.import_options={a: &x [1], b: *x}"],
     "the value is not valid YAML (anchor &x"),
    ("unparsable --set", lambda m: ["train", "--config", BPR, "--set", "trainer.epochs=[1"],
     "--set 'trainer.epochs=[1': the value is not valid YAML"),
    ("--set without =", lambda m: ["train", "--config", BPR, "--set", "trainer.epochs"], "expected KEY=VALUE"),
    ("embedding_dim 0", lambda m: ["train", "--config", BPR, "--set", "model.bpr.embedding_dim=0"],
     "--set model.bpr.embedding_dim=0: key 'model.bpr.embedding_dim' must be ≥ 1, got 0"),
    ("embedding_dim negative", lambda m: ["train", "--config", BPR, "--set", "model.bpr.embedding_dim=-4"],
     "--set model.bpr.embedding_dim=-4: key 'model.bpr.embedding_dim' must be ≥ 1"),
    ("checkpoint_every_steps 0", lambda m: ["train", "--config", BPR, "--set", "trainer.checkpoint_every_steps=0"],
     "--set trainer.checkpoint_every_steps=0: key 'trainer.checkpoint_every_steps' must be ≥ 1"),
    ("steps_per_epoch negative", lambda m: ["train", "--config", BPR, "--set", "trainer.steps_per_epoch=-1"],
     "key 'trainer.steps_per_epoch' must be ≥ 0"),
    ("model_dir under a file", lambda m: ["train", "--config", BPR, "--set", f"runtime.model_dir={m['a_file']}/run"],
     "under the file"),
    ("learning_rate NaN", lambda m: ["train", "--config", BPR, "--set", "trainer.learning_rate=.nan"],
     "key 'trainer.learning_rate' must be a finite number"),
    ("eval.ks with 0", lambda m: ["train", "--config", BPR, "--set", "eval.ks=[0, 5]"], "key 'eval.ks[0]' must be ≥ 1"),
    ("unknown validation metric", lambda m: ["train", "--config", BPR, "--set", "trainer.validation_metric=map@10"],
     "--set trainer.validation_metric=map@10: key 'trainer.validation_metric' is 'map@10'; expected one of ['hr@K'"),
    ("validation metric without K", lambda m: ["train", "--config", BPR, "--set", "trainer.validation_metric=hr@x"],
     "key 'trainer.validation_metric' is 'hr@x'"),
    ("bad eval protocol", lambda m: ["train", "--config", BPR, "--set", "eval.protocols=[sampled:abc]"],
     "key 'eval.protocols': unknown evaluation protocol 'sampled:abc'"),
    ("bad table column", lambda m: ["train", "--config", BPR, "--set", "eval.table_metrics=[hr, map]"],
     "key 'eval.table_metrics[1]' must be one of ['hr'"),
    ("seed out of range", lambda m: ["train", "--config", BPR, "--set", "runtime.seed=-1"],
     "key 'runtime.seed' must be in [0, 2**32 - 1]"),
    ("unknown baseline", lambda m: ["train", "--config", BPR, *m["sets"], "--set", "eval.baselines=[nope]"],
     "eval.baselines: unknown baseline 'nope'; registered:"),
    ("huge --set value", lambda m: ["train", "--config", BPR, "--set", "trainer.epochs=" + "9x" * 500_000],
     "(1,000,000 characters in all)"),
    ("protocol sampled:abc", lambda m: ["evaluate", "--run", m["run"], "--protocol", "sampled:abc"],
     "--protocol 'sampled:abc': unknown evaluation protocol"),
    ("protocol sampled:0", lambda m: ["evaluate", "--run", m["run"], "--protocol", "sampled:0"],
     "--protocol 'sampled:0'"),
    ("run not found", lambda m: ["evaluate", "--run", str(m["root"] / "nope")], "run directory not found"),
    ("binary data file", lambda m: ["data", "validate", m["binary_table"]], "binary file"),
    ("corrupt dataset.yaml", lambda m: ["data", "validate", m["bad_yaml"]], "dataset.yaml, line 2: not valid YAML"),
    ("truncated table", lambda m: ["data", "validate", m["truncated"]],
     "does not end with a newline: the file looks truncated"),
    ("short row", lambda m: ["data", "validate", m["short_row"]],
     "train.tsv, line 3: has 2 fields, the first line has 3"),
    ("huge id", lambda m: ["data", "validate", m["huge_id"]], "user id of 1,000,000 characters"),
]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in BAD_INVOCATIONS], ids=[c[0] for c in BAD_INVOCATIONS])
def test_bad_invocation_is_one_paragraph_and_exit_2(mistakes, argv, expected, capsys):
    code = cli.main(argv(mistakes))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("tfvrec ") and ": error: " in line]
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    assert len(errors) == 1 and len(errors[0]) < 1600, err[-3000:]
    assert expected in errors[0], errors[0][:1000]


def test_truncated_table_can_be_dropped_and_reported(mistakes, capsys):
    assert cli.main(["data", "validate", "--drop-truncated-rows", mistakes["truncated"]]) == 0
    out = capsys.readouterr().out
    assert "dropped:" in out and "which had no final newline (truncated)" in out


def test_no_traceback_at_the_process_level(mistakes):
    """A real process: a config mistake and a busy gRPC port end in one line, exit 2."""
    result = subprocess.run([sys.executable, "-m", "tfvrec", "train", "--config", BPR, "--set",
                             "model.bpr.embedding_dim=0"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "tfvrec train: error: --set model.bpr.embedding_dim=0: key 'model.bpr.embedding_dim' must be ≥ 1, got 0"]
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        result = subprocess.run([sys.executable, "-m", "tfvrec", "serve", "--model_name", "m", "--model_base_path",
                                 str(mistakes["root"]), "--port", str(busy.getsockname()[1])], cwd=REPO,
                                capture_output=True, text=True, timeout=300)
    finally:
        busy.close()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "cannot bind gRPC to 127.0.0.1" in result.stderr


def test_shipped_configs_by_name_and_in_the_package():
    from tfvrec import config as config_lib
    shipped = config_lib.shipped_configs()
    assert {"bpr_synthetic", "curatornet_synthetic", "hasc_synthetic"} <= set(shipped)
    assert config_lib.resolve_config_path("curatornet_synthetic") == shipped["curatornet_synthetic"]
    assert config_lib.load_config(config_lib.resolve_config_path("hasc_synthetic")).model.name == "hasc"


def test_quiet_by_default_verbose_on_request(mistakes, tmp_path):
    """TensorFlow's start-up lines (cuInit, CPU features), absl's "Logging before flag parsing" and TF's
    deprecation warnings only with --verbose."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    outputs = {}
    for name, extra in (("quiet", []), ("verbose", ["--verbose"])):
        result = subprocess.run([sys.executable, "-m", "tfvrec", "train", "--config", BPR, *extra,
                                 "--set", "data.source=directory", "--set", f"data.path={mistakes['data']}",
                                 "--set", f"runtime.model_dir={tmp_path / name}", "--set", "trainer.epochs=1",
                                 "--set", "trainer.steps_per_epoch=3", "--set", "eval.protocols=[full]",
                                 "--set", "eval.repeats=1", "--set", "eval.baselines=[]", "--set", "trainer.verbose=0"],
                                cwd=REPO, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[name] = result.stderr
    for noise in ("cuInit", "Logging before flag parsing", "is slow compared", "WARNING:tensorflow", "oneDNN",
                  "cpu_feature_guard"):
        assert noise not in outputs["quiet"], noise
    assert "oneDNN" in outputs["verbose"] or "cpu_feature_guard" in outputs["verbose"]


def test_progress_bars_on_a_terminal_or_when_asked(tmp_path):
    command = [sys.executable, "-m", "tfvrec", "data", "synth", "--out", str(tmp_path / "w"), "--set", "num_users=100",
               "--set", "num_items=200", "--set", "num_creators=20"]
    shown = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                           env=dict(os.environ, TFVREC_PROGRESS="1"))
    assert shown.returncode == 0 and "synthetic world" in shown.stderr
    hidden = subprocess.run(command + ["--overwrite"], cwd=REPO, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "TFVREC_PROGRESS"})
    assert hidden.returncode == 0 and "synthetic world" not in hidden.stderr  # not a terminal: no bar
