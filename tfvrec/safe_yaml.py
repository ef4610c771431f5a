"""YAML a user hands in, read as data: config files, ``--set`` values, a run's ``params.yaml``, a
data set's ``dataset.yaml``. Every YAML tfvrec reads goes through `load` / `load_file`.

PyYAML's ``safe_load`` builds no objects, but it still expands aliases (a ~1 KB document of
nested aliases, "billion laughs", grows past gigabytes), recurses once per nesting level (a
deeply nested document ends in ``RecursionError``), turns a long YAML 1.1 number such as
``1:0:0:…`` into ever larger integers (quadratic time), and lets a second ``trainer:`` key
silently replace the first. Here a document is refused, with one error naming the source, the
line and the reason, when it

- has an alias or an anchor (a config never needs one: write the value out);
- nests deeper than `MAX_DEPTH` collections;
- is longer than `MAX_YAML_BYTES` (configs are a few kilobytes);
- repeats a key in one mapping (the line of each occurrence is named);
- holds a number of more than `MAX_NUMBER_CHARS` characters.

Errors are made by an ``error(source, line, reason)`` callable: `config_error` (a
`tfvrec.errors.ConfigError`, the default) or `data_error` (a `tfvrec.data.errors.DataError`).
TensorFlow-free.
"""
import yaml

from tfvrec import input_files
from tfvrec.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec.errors import quote

MAX_YAML_BYTES = 2 ** 20
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 100


def config_error(source, line, reason):
    return ConfigError(f"{source}{f', line {line}' if line else ''}: {reason}")


def data_error(source, line, reason):
    return DataError(source, reason, line=line)


class _Refused(Exception):
    def __init__(self, mark, reason):
        super().__init__(reason)
        self.line = mark.line + 1 if mark is not None else None
        self.reason = reason


class _Loader(yaml.SafeLoader):
    """SafeLoader without aliases or anchors, with a depth bound, refusing duplicate keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, f"alias *{event.anchor}: aliases are not accepted (they can expand "
                                             "a small file into gigabytes); write the value out")
        if getattr(event, "anchor", None) is not None:
            raise _Refused(event.start_mark, f"anchor &{event.anchor}: anchors and aliases are not accepted; write "
                                             "the value out")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeConstructor names it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _Refused(key_node.start_mark, f"duplicate key {input_quote(key)} (lines {first} and {line}); "
                                                    "a second value would silently replace the first: keep one")
            seen[key] = line
        return super().construct_mapping(node, deep)

    def _number(self, node, construct):
        if len(node.value) > MAX_NUMBER_CHARS:
            raise _Refused(node.start_mark, f"a number of {len(node.value):,} characters (at most "
                                            f"{MAX_NUMBER_CHARS}); quote it if it is a string")
        return construct(self, node)


_Loader.add_constructor("tag:yaml.org,2002:int",
                        lambda loader, node: loader._number(node, yaml.SafeLoader.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float",
                        lambda loader, node: loader._number(node, yaml.SafeLoader.construct_yaml_float))


def input_quote(value):
    return quote(value, limit=80)


def load(text, source, error=config_error):
    """The document in ``text`` (a str), or ``error(source, line, reason)`` raised."""
    if len(text) > MAX_YAML_BYTES:
        raise error(source, None, f"{len(text):,} characters of YAML, more than {MAX_YAML_BYTES:,}")
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except _Refused as e:
        raise error(source, e.line, e.reason) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(source, mark.line + 1 if mark is not None else None, f"not valid YAML ({problem})") from None
    except (ValueError, TypeError, RecursionError) as e:  # a value PyYAML cannot build (e.g. a bad date)
        raise error(source, None, f"not valid YAML ({type(e).__name__}: {input_quote(str(e))})") from None
    finally:
        loader.dispose()


def load_file(path, what="a YAML file", error=config_error, limit=MAX_YAML_BYTES):
    """The document of the file ``path``: a regular UTF-8 file of at most ``limit`` bytes, read by `load`."""
    data = input_files.read_input(path, what, limit, error=lambda p, reason: error(p, None, reason))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(path, None, f"not a text (UTF-8) file; expected {what}") from None
    return load(text, path, error)
