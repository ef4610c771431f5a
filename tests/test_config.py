import glob
import os

import pytest
import yaml

from tfvrec import config as config_lib
from tfvrec.config import ConfigError

from conftest import REPO


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*.yaml"))))
def test_every_shipped_config_loads(path):
    config = config_lib.load_config(path)
    assert config.runtime.model_dir.startswith("runs/")


def test_yaml_overrides_and_set_overrides_apply_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiment: bpr\ntrainer:\n  epochs: 7\n  learning_rate: 1\n")
    config = config_lib.load_config(str(path), ["trainer.epochs=3", "runtime.model_dir=/tmp/x", "model.bpr.l2=1e-3",
                                                "eval.ks=[1, 2]"])
    assert config.trainer.epochs == 3
    assert config.trainer.learning_rate == 1.0 and isinstance(config.trainer.learning_rate, float)
    assert config.runtime.model_dir == "/tmp/x" and config.model.bpr.l2 == 1e-3
    assert config.eval.ks == [1, 2]


def test_mistyped_key_names_key_file_and_valid_choices(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainer:\n  epocs: 3\n")
    with pytest.raises(ConfigError) as e:
        config_lib.load_config(str(path))
    message = str(e.value)
    assert str(path) in message and "trainer.epocs" in message
    assert "Did you mean 'trainer.epochs'" in message and "batch_size" in message


def test_wrong_type_and_bad_choice_are_reported():
    with pytest.raises(ConfigError, match=r"--set trainer.epochs=ten: key 'trainer.epochs' expects int, got str"):
        config_lib.load_config(None, ["trainer.epochs=ten"])
    with pytest.raises(ConfigError, match=r"key 'model.name' must be one of \['bpr'"):
        config_lib.load_config(None, ["model.name=nope"])
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        config_lib.load_config(None, experiment="nope")
    with pytest.raises(ConfigError, match="eval.protocols"):
        config_lib.load_config(None, ["eval.protocols=[sampled:x]"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        config_lib.load_config(None, ["trainer.epochs"])


def test_params_yaml_round_trips(tmp_path):
    config = config_lib.load_config(None, ["trainer.epochs=4", "data.import_options={a: 1}"])
    config_lib.write_params(config, str(tmp_path))
    again = config_lib.read_params(str(tmp_path))
    assert again == config
    assert yaml.safe_load(open(tmp_path / "params.yaml"))["trainer"]["epochs"] == 4


def test_synthetic_world_constraints_are_checked_after_overrides():
    with pytest.raises(ConfigError, match="data.synthetic"):
        config_lib.load_config(None, ["data.synthetic.num_users=-5"])


# -- hostile YAML (issue 30): aliases, depth, duplicate keys, size -----------------------------------------------

def _alias_bomb(levels=9, indent=""):
    """~1 KB of YAML whose aliases expand to 9**levels strings (387 million at 9 levels)."""
    lines = [f'{indent}a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        lines.append(f"{indent}a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_a_config_file_is_refused_at_once(tmp_path):
    """Under data.import_options (a str → str mapping) every value is turned into a string: the aliases
    expanded into gigabytes before (the issue's 3 GB in 72 s); now the first anchor is refused."""
    import time
    path = tmp_path / "bomb.yaml"
    path.write_text("experiment: bpr\ndata:\n  import_options:\n" + _alias_bomb(indent="    "))
    assert path.stat().st_size < 1200
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml, line 4: anchor &a0: anchors and aliases are not accepted"):
        config_lib.load_config(str(path))
    assert time.perf_counter() - started < 5  # (refused before any expansion: milliseconds)


def test_alias_in_a_set_value_is_refused():
    bomb = "{" + _alias_bomb().replace("\n", ", ").rstrip(", ") + "}"
    with pytest.raises(ConfigError, match=r"--set 'data.import_options=.*: the value is not valid YAML \(anchor &a0"):
        config_lib.load_config(None, ["data.import_options=" + bomb])
    with pytest.raises(ConfigError, match=r"aliases are not accepted"):
        config_lib.parse_set("trainer.epochs=*x")


def test_deep_nesting_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("trainer: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml, line 1: nested more than 32 levels deep"):
        config_lib.load_config(str(path))
    with pytest.raises(ConfigError, match="nested more than 32 levels deep"):
        config_lib.load_config(None, ["data.import_options=" + "{a: " * 100 + "1" + "}" * 100])


def test_duplicate_key_names_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("experiment: bpr\ntrainer:\n  epochs: 3\neval:\n  repeats: 2\ntrainer:\n  epochs: 9\n")
    with pytest.raises(ConfigError, match=r"twice\.yaml, line 6: duplicate key 'trainer' \(lines 2 and 6\)"):
        config_lib.load_config(str(path))
    path.write_text("trainer:\n  epochs: 3\n  epochs: 4\n")
    with pytest.raises(ConfigError, match=r"line 3: duplicate key 'epochs' \(lines 2 and 3\)"):
        config_lib.load_config(str(path))


def test_oversized_config_and_long_numbers_are_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("experiment: bpr\n" + "# padding\n" * 120_000)
    with pytest.raises(ConfigError, match=r"big\.yaml: is 1,200,016 bytes, more than the 1,048,576 bytes a YAML "
                                          "config file may have"):
        config_lib.load_config(str(path))
    path.write_text("trainer:\n  epochs: " + "1:0" * 20_000 + "\n")  # a YAML 1.1 base-60 integer
    with pytest.raises(ConfigError, match="a number of 60,000 characters"):
        config_lib.load_config(str(path))


def test_params_yaml_is_read_by_the_same_loader(tmp_path):
    config_lib.write_params(config_lib.load_config(None), str(tmp_path))
    params = tmp_path / "params.yaml"
    params.write_text(params.read_text() + "trainer:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match=r"params\.yaml, line \d+: duplicate key 'trainer'"):
        config_lib.read_params(str(tmp_path))


def test_baseline_trainer_gives_a_trained_row_its_own_recipe():
    """eval.baseline_trainer: the bpr / vbpr / twonets rows' trainer assignments, checked when the config is read
    and applied by each row's baseline run (so the row's run directory changes with its recipe)."""
    from tfvrec.models.bpr import baselines as bpr_baselines
    from tfvrec.models.cdl import baselines as cdl_baselines
    from tfvrec.models.vbpr import baselines as vbpr_baselines
    base = os.path.join(REPO, "configs", "curatornet_synthetic.yaml")
    plain = config_lib.load_config(base)
    config = config_lib.load_config(base, ['eval.baseline_trainer={bpr: "learning_rate=0.003, epochs=7", '
                                           'vbpr: "learning_rate=0.0002", twonets: "weight_decay=0.001"}'])
    bpr = bpr_baselines.baseline_config(config)
    assert (bpr.trainer.learning_rate, bpr.trainer.epochs) == (0.003, 7)
    assert bpr.runtime.model_dir != bpr_baselines.baseline_config(plain).runtime.model_dir
    assert bpr.eval.baseline_trainer == {}
    assert vbpr_baselines.baseline_config(config).trainer.learning_rate == 0.0002
    assert vbpr_baselines.baseline_config(plain).trainer.learning_rate == 1e-3  # the VBPR experiment's
    assert cdl_baselines.twonets_config(config).trainer.weight_decay == 0.001
    with pytest.raises(config_lib.ConfigError, match="eval.baseline_trainer.bpr.*unknown key 'trainer.lr'"):
        config_lib.load_config(base, ['eval.baseline_trainer={bpr: "lr=0.1"}'])
    with pytest.raises(config_lib.ConfigError, match="eval.baseline_trainer.vbpr.*expected KEY=VALUE"):
        config_lib.load_config(base, ['eval.baseline_trainer={vbpr: "0.1"}'])
