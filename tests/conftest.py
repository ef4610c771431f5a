"""Test set-up: tf-keras, two logical CPU devices (to test MirroredStrategy), real-data paths."""
import os

import tfvrec  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import pytest
import tensorflow as tf

# Must happen before TensorFlow initialises its runtime: every test in this process
# sees two logical CPUs, so MirroredStrategy has two replicas to mirror across.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("TFVREC_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))


def shared_data(name):
    """Path of a real data set in ../shared/data, or skip the test with the reason."""
    path = os.path.join(SHARED_DATA, name)
    if not os.path.isdir(path):
        pytest.skip(f"real data set {name!r} not found at {path} (set TFVREC_SHARED_DATA)")
    return path
