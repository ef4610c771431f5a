"""Benchmark figures live in ``docs/benchmarks.md``, one section per benchmark.

Each benchmark script rewrites only its own section (between HTML comment markers),
so several benchmarks can update the same document independently.

Only ``tools/chaos_train.py`` and ``tools/chaos_serve.py`` still write through this module; every
other section is written by the benchmark harness (``tools/bench.py``, ``tools/harness/document.py``:
the same markers, plus a stamp naming the commit measured). Sections written here carry no commit,
so the harness's check calls them stale until those tools become harness sections.
"""
import datetime
import os
import platform
import re

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")
HEADER = ("# Benchmarks\n\nFigures written by the scripts in `tools/`; each section names the command that "
          "produced it.\n")


def machine_summary():
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, load average {load}"


def update_section(name, markdown, path=DEFAULT_PATH):
    """Replace (or append) the section ``name`` of the benchmarks document with ``markdown``."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"<!-- BEGIN {name} -->\n{markdown.rstrip()}\n\n_Measured {stamp} on {machine_summary()}._\n"
            f"<!-- END {name} -->")
    text = open(path).read() if os.path.exists(path) else HEADER
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def publish(name, markdown, write=True, path=DEFAULT_PATH):
    """Print a benchmark's section and, unless ``write`` is false (a dry run), put it in the document."""
    print(markdown, flush=True)
    if write:
        update_section(name, markdown, path)
        print(f"Wrote section '{name}' of {path}")
