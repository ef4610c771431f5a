"""Error types and error text shared across tfvrec.

`ConfigError` is a bad configuration value. `clean_tf_message` gives the useful part of
a TensorFlow error, without graph-node noise: the feature extractor (an image
TensorFlow cannot decode) and the model server (a request a signature's
``tf.debugging.Assert`` rejects) both show TensorFlow's own message to a user, and
this is the one place that trims it.
"""
import re

_NOISE_PREFIXES = ("Graph execution error", "Detected at node", "<stack traces", "[[{{node")


def clean_tf_message(message):
    """The assertion text of a failed ``tf.debugging.Assert``, or the op error without
    ``{{function_node ...}}`` prefixes, ``[[{{node ...}}]]`` markers and ``[Op:...]`` suffixes."""
    found = re.search(r"assertion failed: (.*)", message)
    if found:
        return " ".join(re.findall(r"\[([^\[\]]*)\]", found.group(1))) or found.group(1)
    lines = [line.strip() for line in message.splitlines()]
    keep = [line for line in lines if line and not line.startswith(_NOISE_PREFIXES)]
    text = " ".join(keep) or message.strip() or "unknown error"
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[\[\{\{node [^}]*\}\}\]\]", "", text)
    return re.sub(r"\s*\[Op:[^\]]*\]", "", text).strip()


class ConfigError(ValueError):
    """A bad configuration; the message names the key, its source and what is valid.

    Defined here (not in ``tfvrec.config``) so that model packages' TensorFlow-free
    config modules can raise it without importing the config loader that composes them.
    """


def check_one_of(source, section, fields):
    """Raise a `ConfigError` for the first ``(key, value, choices)`` of ``fields`` whose value is not one of its
    choices (``section``: the dotted prefix of the keys, e.g. ``model.vbpr``)."""
    for key, value, choices in fields:
        if value not in choices:
            raise ConfigError(f"{source}: key '{section}.{key}' must be one of {list(choices)}, got {value!r}")


# Error messages quote at most this much of the input they complain about (a 40 MiB line
# or id must not come back whole in a message, a log line or an RPC status).
QUOTE_LIMIT = 200


def quote(value, limit=QUOTE_LIMIT):
    """``repr(value)``, cut to about ``limit`` characters (saying how long it was)."""
    if isinstance(value, str):
        text, length = repr(value[:limit + 1]), len(value)
    else:
        text = repr(value)
        length = len(text)
    if len(text) <= limit + 2:
        return text
    return f"{text[:limit]}… ({length:,} characters in all)"


def shorten(text, limit=1000):
    """``text`` cut to ``limit`` characters (the end replaced by how much was left out)."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters]"


class DataError(ValueError):
    """Bad input data. The message names the file, the line or key, and what was expected.

    The CLI prints the message alone (no traceback), so it must be complete by itself. (Here, beside
    `ConfigError`, so that the readers of input files below the data layer — `tfvrec.input_files`,
    `tfvrec.safe_yaml`, `tfvrec.outputs` — raise it without importing `tfvrec.data`.)
    """

    def __init__(self, path, reason, line=None, key=None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.key = key
        self.reason = reason
