"""TF Serving's ``model_config_list`` file and the export directory layout (no TensorFlow import)."""
import fcntl
import os
import tempfile

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfvrec import input_files

METADATA_FILE = "tfvrec_export.json"  # in <version>/assets.extra/
WARMUP_FILE = "tf_serving_warmup_requests"  # in <version>/assets.extra/, replayed at load


def existing_versions(base_path):
    """Numeric version directories under ``base_path`` (what TF Serving considers)."""
    if not os.path.isdir(base_path):
        return []
    return sorted(int(d) for d in os.listdir(base_path)
                  if d.isdigit() and os.path.isdir(os.path.join(base_path, d)))


def export_metadata(version_path):
    """The ``tfvrec_export.json`` of an exported version ({} for a SavedModel tfvrec did not write)."""
    path = os.path.join(version_path, "assets.extra", METADATA_FILE)
    if not os.path.exists(path):
        return {}
    # (bounded, a regular file: an export directory is a user's)
    return input_files.read_json(path, "an export's metadata", error=lambda p, reason: ValueError(f"{p}: {reason}"))


MAX_CONFIG_BYTES = 16 * 2 ** 20


def _read_text(path):
    """A model config's text: a regular UTF-8 file of at most 16 MiB (a FIFO would block the server's poll)."""
    data = input_files.read_input(path, "a model_config_list file", limit=MAX_CONFIG_BYTES,
                                  error=lambda p, reason: ValueError(f"{p}: {reason}"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; expected a model_config_list file") from None


def read_model_config(path):
    """Parse a ``model_config_list`` text proto; relative base paths are relative to the file."""
    config = model_server_config_pb2.ModelServerConfig()
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: model config file not found")
    try:
        text_format.Parse(_read_text(path), config)
    except text_format.ParseError as e:
        raise ValueError(f"{path}: not a valid ModelServerConfig text proto: {e}") from None
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: expected a model_config_list")
    names = [c.name for c in config.model_config_list.config]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"{path}: model names must be unique and non-empty, got {names}")
    for entry in config.model_config_list.config:
        if not os.path.isabs(entry.base_path):
            entry.base_path = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(path)), entry.base_path))
    return config.model_config_list


def update_models_config(path, name, base_path):
    """Add or update ``name`` in a ``model_config_list`` file (atomically, under an flock on its
    directory, so no lock file is left beside it)."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = model_server_config_pb2.ModelServerConfig()
        if os.path.exists(path):
            try:
                text_format.Parse(_read_text(path), config)
            except text_format.ParseError as e:
                raise ValueError(f"{path}: not a valid model_config_list text proto ({e})") from None
        for entry in config.model_config_list.config:
            if entry.name == name:
                entry.base_path = os.path.abspath(base_path)
                entry.model_platform = "tensorflow"
                break
        else:
            entry = config.model_config_list.config.add()
            entry.name, entry.base_path, entry.model_platform = name, os.path.abspath(base_path), "tensorflow"
        fd, tmp = tempfile.mkstemp(prefix=".models.config.", dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as f:
            f.write(text_format.MessageToString(config))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        os.close(lock)
    return path
