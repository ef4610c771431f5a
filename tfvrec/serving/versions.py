"""Writing SavedModel versions as TF Serving expects them: atomically, verified, warmed up.

A version is written under a hidden temporary name in ``<name>/`` and renamed into
place only once it is complete, saved, re-loaded and answered its warm-up
requests, so a model server polling ``<name>/`` never sees a half-written version::

    <name>/<version>/                    saved_model.pb, variables/, assets.extra/
        assets.extra/tfvrec_export.json      what the export holds (model, run, index, signatures, ops)
        assets.extra/tf_serving_warmup_requests   replayed by TF Serving (and tfvrec serve) at load

Any serving module can be written: it needs ``signature_functions`` (name →
``tf.function``), ``index_kind`` and ``warmup_requests()`` (`tfvrec.serving.module`
has them; so does a model's own module, e.g. a tag recommender's). The graph is
checked to hold only stock TensorFlow ops (plus the ``Scann`` namespace for a ScaNN
index), which is what a stock ``tensorflow_model_server`` can run.
"""
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from tfvrec import atomic, progress
from tfvrec.serving.model_config import METADATA_FILE, WARMUP_FILE, existing_versions
from tfvrec.serving.parts import ExportError

SCANN_NAMESPACE = "Scann"
TMP_PREFIX = ".tmp-"
# A version being written is a hidden ``.tmp-*`` directory its writer holds an flock on; one
# nobody holds is left by a killed export and is removed by the next export. Where flock is not
# available (some network file systems), one older than this is taken as abandoned.
STALE_SECONDS = 24 * 3600


def _try_lock(path):
    """An fd holding an exclusive flock on ``path``, or None if a live process holds it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise


def clean_stale(base_path, now=None):
    """Remove the ``.tmp-*`` directories of ``base_path`` whose writer is gone (killed exports).

    Returns the names removed. A directory a running export holds is left alone."""
    removed = []
    if not os.path.isdir(base_path):
        return removed
    for entry in sorted(os.listdir(base_path)):
        path = os.path.join(base_path, entry)
        if not entry.startswith(TMP_PREFIX) or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            fd = _try_lock(path)
        except FileNotFoundError:
            continue
        except OSError:  # no flock here: fall back to the age
            if (now or time.time()) - os.path.getmtime(path) > STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(entry)
            continue
        if fd is None:
            continue  # a running export
        try:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    if removed:
        from absl import logging
        logging.info("Removed %d unfinished version(s) left by killed exports in %s: %s", len(removed), base_path,
                     removed)
    return removed


def saved_model_ops(path):
    """Op types in a SavedModel's graph and function library."""
    from tensorflow.python.saved_model import loader_impl
    saved = loader_impl.parse_saved_model(path)
    ops = set()
    for meta in saved.meta_graphs:
        ops.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def custom_ops(ops):
    """Ops outside stock TensorFlow: namespaced (``Scann>...``) or not registered by core TF."""
    from tensorflow.python.framework import op_def_registry
    return sorted(op for op in ops if ">" in op or op_def_registry.get(op) is None)


def _write_warmup(path, model_name, requests):
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def signature_defs(path):
    """``{signature name: SignatureDef}`` of a SavedModel's ``serve`` MetaGraph (as TF Serving reads it)."""
    from tensorflow.python.saved_model import loader_impl
    saved = loader_impl.parse_saved_model(path)
    for meta in saved.meta_graphs:
        if "serve" in meta.meta_info_def.tags:
            return {k: v for k, v in meta.signature_def.items() if not k.startswith("__")}
    raise ExportError(f"{path}: no MetaGraph tagged 'serve'")


def _verify(path, requests):
    """Load the written SavedModel and answer the warm-up requests (never publish a broken export)."""
    loaded = tf.saved_model.load(path)
    defs = signature_defs(path)
    for signature, inputs in requests:
        # The Python loader does not apply SignatureDef defaults (TF Serving does): add them.
        args = {name: tf.make_ndarray(proto) for name, proto in defs[signature].defaults.items()}
        args.update(inputs)
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in args.items()})
        for name, value in outputs.items():
            if value.dtype.is_floating and not np.isfinite(value.numpy()).all():
                raise ExportError(f"{path}: signature {signature} output {name} is not finite on a warm-up request")


def _fsync_tree(path):
    for directory, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(directory, name), "rb") as f:
                os.fsync(f.fileno())
        atomic.fsync_path(directory)


def write_version(module, base_path, version=None, metadata=None, verify=True):
    """Save ``module`` as ``<base_path>/<version>`` atomically; return ``(version, path)``."""
    base_path = os.path.abspath(base_path)
    os.makedirs(base_path, exist_ok=True)
    explicit = version is not None
    if explicit and (not isinstance(version, int) or version < 1):
        raise ExportError(f"version must be a positive integer, got {version!r}")
    if explicit and os.path.exists(os.path.join(base_path, str(version))):
        raise ExportError(f"{base_path}/{version} already exists; versions are immutable, choose another")
    clean_stale(base_path)
    tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base_path)
    held = _try_lock(tmp)  # held until the version is published: the mark of a live writer
    stages = progress.bar(total=4 if verify else 3, desc="export", unit="stage")
    try:
        options = tf.saved_model.SaveOptions(
            namespace_whitelist=[SCANN_NAMESPACE] if module.index_kind == "scann" else None)
        start = time.time()
        stages.set_description_str("export: saving the SavedModel")
        tf.saved_model.save(module, tmp, signatures=module.signature_functions, options=options)
        stages.update()
        stages.set_description_str("export: checking its ops, writing warm-up requests")
        ops = saved_model_ops(tmp)
        custom = custom_ops(ops)
        scann = module.index_kind == "scann"
        allowed = {op for op in custom if scann and op.startswith(SCANN_NAMESPACE + ">")}
        if set(custom) - allowed:
            raise ExportError(f"the export holds ops stock TensorFlow Serving cannot run: "
                              f"{sorted(set(custom) - allowed)}")
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        requests = module.warmup_requests()
        _write_warmup(os.path.join(extra, WARMUP_FILE), (metadata or {}).get("model_name", ""), requests)
        info = dict(metadata or {})
        info.update(custom_ops=custom, ops=sorted(ops), save_seconds=round(time.time() - start, 3))
        with open(os.path.join(extra, METADATA_FILE), "w") as f:
            json.dump(info, f, indent=2, sort_keys=False)
        stages.update()
        if verify:
            stages.set_description_str("export: loading it back and answering the warm-up requests")
            _verify(tmp, requests)
            stages.update()
        stages.set_description_str("export: publishing the version")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a server running as another user must read it
        _fsync_tree(tmp)  # on disk before it becomes visible: a crash cannot publish a truncated file
        for _ in range(100):  # another exporter may take the next number first: take the one after
            if not explicit:
                version = max(existing_versions(base_path), default=0) + 1
            final = os.path.join(base_path, str(version))
            try:
                if os.path.exists(final):
                    raise FileExistsError(errno.EEXIST, "exists", final)
                os.rename(tmp, final)  # atomic; fails on an existing non-empty directory
                break
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if explicit:
                    raise ExportError(f"{final} appeared while exporting; versions are immutable") from None
        else:
            raise ExportError(f"{base_path}: could not claim a version number (100 attempts)")
        atomic.fsync_path(base_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        stages.update()
        stages.close()
        if held is not None:
            os.close(held)
    return version, final
