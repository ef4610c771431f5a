"""Pick the ``tf.distribute`` strategy from the runtime config."""
import json
import os

import tensorflow as tf
from absl import logging

from tfvrec.errors import ConfigError


def configure_devices(runtime):
    """Device set-up that must happen before TensorFlow initialises its runtime."""
    if runtime.threads:
        configure_threads(runtime.threads)
    if runtime.logical_cpus > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * runtime.logical_cpus)
        except RuntimeError:
            # Already initialised (e.g. a second run in one process): keep what exists.
            logging.warning("TensorFlow already initialised; keeping %d logical CPUs",
                            len(tf.config.list_logical_devices("CPU")))
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    if runtime.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()


def configure_threads(threads):
    """TensorFlow's intra- and inter-op thread pools at ``threads`` each (``runtime.threads``). Only a
    process whose TensorFlow runtime has not started yet can change them (``tfvrec train`` does this first);
    later, a different setting is kept and a warning says so."""
    wanted = (threads, threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass
    have = (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())
    if have != wanted:
        logging.warning("runtime.threads=%d: TensorFlow already initialised with intra/inter-op threads %s; "
                        "kept", threads, have)


def num_workers():
    """Workers (and chief) named by TF_CONFIG (0 without one)."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster = tf_config.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def create_strategy(runtime):
    """``auto``: multi-worker if TF_CONFIG has >1 worker; mirrored over GPUs or logical CPUs; else default."""
    kind = runtime.distribution_strategy
    if kind == "auto":
        if num_workers() > 1:
            kind = "multi_worker_mirrored"
        elif tf.config.list_logical_devices("GPU") or len(tf.config.list_logical_devices("CPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "parameter_server":
        strategy = create_parameter_server_strategy(runtime)
    elif kind == "multi_worker_mirrored":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif kind == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.OneDeviceStrategy((gpus or tf.config.list_logical_devices("CPU"))[0].name)
    else:
        strategy = tf.distribute.get_strategy()
    logging.info("Distribution strategy: %s (%s) with %d replica(s)", kind, type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    return strategy


def create_parameter_server_strategy(runtime):
    """ParameterServerStrategy over the TF_CONFIG cluster, every variable split over its ps tasks
    (`tfvrec.training.parameter_server`)."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    num_ps = len(resolver.cluster_spec().as_dict().get("ps", []))
    if not num_ps:
        raise ConfigError("runtime.distribution_strategy=parameter_server needs a TF_CONFIG whose cluster has 'ps' "
                          "tasks (and 'chief', 'worker'); see docs/scale.md")
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=runtime.ps_min_shard_bytes, max_shards=num_ps)
    return tf.distribute.experimental.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def is_chief(strategy):
    """Only the chief writes params, checkpoints it owns, metrics and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())
