"""docs/benchmarks.md: one section per benchmark between HTML comment markers, each with its stamp.

    <!-- BEGIN name -->
    ## Title
    ...the section's markdown...

    _Measured ... at commit ... (the stamp's line)._
    <!-- stamp {...} -->
    <!-- END name -->

The markers are those the scripts wrote before the harness (through ``tfvrec/benchmark_report.py``,
since removed): their sections stay readable, but carry no stamp, so `tools/harness/fresh.py` calls them
stale. A section is replaced in place or appended; everything outside the markers (the document's header)
is left as it is.
"""
import os
import re

from harness import REPO
from harness import stamp as stamp_lib

DEFAULT_PATH = os.path.join(REPO, "docs", "benchmarks.md")
HEADER = "# Benchmarks\n\nFigures written by `tools/bench.py`; see the README's Benchmarks section.\n"
_SECTION = re.compile(r"<!-- BEGIN (?P<name>[^\s]+) -->\n(?P<body>.*?)\n?<!-- END (?P=name) -->", re.S)


def read_sections(path=DEFAULT_PATH, text=None):
    """``{name: body}`` of every section, in document order (body: between the markers)."""
    if text is None:
        if not os.path.exists(path):
            return {}
        with open(path, encoding="utf-8") as f:
            text = f.read()
    return {m.group("name"): m.group("body") for m in _SECTION.finditer(text)}


def stamps(path=DEFAULT_PATH):
    """``{name: Stamp or None}`` of every section of the document."""
    return {name: stamp_lib.read(body) for name, body in read_sections(path).items()}


def section_text(name, markdown, stamp):
    return (f"<!-- BEGIN {name} -->\n{markdown.rstrip()}\n\n{stamp.line()}\n{stamp.comment()}\n"
            f"<!-- END {name} -->")


def replace_section(text, name, block):
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip() + "\n\n" + block + "\n"


def write_section(name, markdown, stamp, path=DEFAULT_PATH):
    """Put section ``name`` (``markdown`` and its ``stamp``) into the document at ``path``, atomically."""
    text = HEADER
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    text = replace_section(text, name, section_text(name, markdown, stamp))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)
