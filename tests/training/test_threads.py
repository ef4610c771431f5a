"""``runtime.threads``: TensorFlow's intra- and inter-op pools, set before its runtime starts (one-thread timings)."""
import os
import subprocess
import sys

import pytest

from tfvrec import config as config_lib
from tfvrec.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_threads_set_before_the_runtime_starts():
    code = ("from tfvrec.config import RuntimeConfig\n"
            "from tfvrec.training.distribution import configure_devices\n"
            "import tensorflow as tf\n"
            "configure_devices(RuntimeConfig(threads=1))\n"
            "tf.constant(1.0) + 1.0\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.config.threading.get_inter_op_parallelism_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                         capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["1", "1"]


def test_threads_default_and_bounds():
    assert config_lib.RuntimeConfig().threads == 0
    with pytest.raises(ConfigError, match="runtime.threads"):
        config_lib.load_config(os.path.join(REPO, "configs", "bpr_synthetic.yaml"), ["runtime.threads=-1"])
