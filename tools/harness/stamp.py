"""The stamp of a measurement: the commit measured, date, machine, load averages, time, command.

A section's stamp is taken when it starts (`Stamp.capture`) and closed when it ends (`Stamp.finish`);
`tools/harness/document.py` writes it under the section twice: a line for people, and the same as a
JSON comment that `tools/harness/fresh.py` reads back::

    _Measured 2026-12-03 10:00 UTC at commit 1a2b3c4d5e6f on x86_64, 2 CPU cores, Python 3.11.7; load
    average (1/5/15 min) 0.31, 0.52, 0.60 at the start, 1.98, 1.42, 0.90 at the end; 212 s;
    `python tools/bench.py --sections scann`._
    <!-- stamp {"commit": "1a2b3c4d5e6f...", "dirty": [], ...} -->

``commit`` is ``git rev-parse HEAD`` of the checkout measured; when the checkout has uncommitted
changes the line says ``-dirty`` and ``dirty`` lists those among the section's measured paths (a figure
of uncommitted measured code belongs to no commit: `fresh` calls it stale; changes elsewhere, e.g. to
docs/benchmarks.md itself, leave it fresh).
"""
import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from typing import List, Optional

COMMENT = re.compile(r"<!-- stamp (\{.*?\}) -->")


def git(repo, *args):
    """``git -C repo args`` → stdout (stripped); raises `subprocess.CalledProcessError`."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def head_commit(repo):
    """``git rev-parse HEAD`` (None outside a git checkout)."""
    try:
        return git(repo, "rev-parse", "HEAD")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


def uncommitted(repo, paths=None):
    """Files with uncommitted changes (modified, staged, deleted, untracked) under ``paths`` (None: anywhere)."""
    args = ["status", "--porcelain", "--untracked-files=all"] + (["--", *paths] if paths else [])
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return []
    return sorted({line[3:].split(" -> ")[-1] for line in out.splitlines() if line.strip()})


def machine():
    """What the figures were measured on (TensorFlow's version once the section has imported it)."""
    text = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    tf = sys.modules.get("tensorflow")
    version = getattr(tf, "__version__", None) if tf is not None else None
    return text + (f", TensorFlow {version}" if version else "")


def _load():
    return [round(x, 2) for x in os.getloadavg()]


@dataclasses.dataclass
class Stamp:
    commit: Optional[str]
    dirty: List[str]  # measured paths with uncommitted changes when the section started
    tree_dirty: bool  # any uncommitted change in the checkout then
    date: str  # UTC, minutes
    machine: str
    load_start: List[float]
    command: str
    quick: bool = False
    load_end: Optional[List[float]] = None
    seconds: Optional[float] = None
    cpu_seconds: Optional[float] = None
    _started: float = dataclasses.field(default=0.0, repr=False, compare=False)
    _cpu: float = dataclasses.field(default=0.0, repr=False, compare=False)

    @classmethod
    def capture(cls, repo, paths, command, quick=False):
        """The stamp of a section starting now in checkout ``repo`` that measures ``paths``."""
        stamp = cls(commit=head_commit(repo), dirty=uncommitted(repo, list(paths)), tree_dirty=bool(uncommitted(repo)),
                    date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    machine=machine(), load_start=_load(), command=command, quick=quick)
        stamp._started, stamp._cpu = time.perf_counter(), time.process_time()
        return stamp

    def finish(self):
        self.load_end = _load()
        self.seconds = round(time.perf_counter() - self._started, 1)
        self.cpu_seconds = round(time.process_time() - self._cpu, 1)
        self.machine = machine()  # (TensorFlow's version is known now)
        return self

    # -- text -------------------------------------------------------------------------------
    def to_json(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    @classmethod
    def from_json(cls, data):
        names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        return cls(**{k: v for k, v in data.items() if k in names})

    def commit_text(self):
        if not self.commit:
            return "an unknown commit (not a git checkout)"
        text = f"commit {self.commit[:12]}"
        if self.dirty:
            return text + f"-dirty (uncommitted changes in the measured code: {', '.join(self.dirty)})"
        return text + ("-dirty (uncommitted changes outside the measured code only)" if self.tree_dirty else "")

    def loaded(self):
        """True when other jobs shared the cores: the 1-min load went above 1.25 × the cores."""
        cores = os.cpu_count() or 1
        return max(self.load_start[0], (self.load_end or self.load_start)[0]) > 1.25 * cores

    def line(self):
        """The line people read under the section."""
        def loads(values):
            return ", ".join(f"{x:.2f}" for x in values)
        end = f", {loads(self.load_end)} at the end" if self.load_end else ""
        busy = " (other jobs shared the cores: times are not speed measurements)" if self.loaded() else ""
        took = f"; {self.seconds:,.0f} s" if self.seconds is not None else ""
        quick = " **Quick mode: toy sizes, the figures are not results.**" if self.quick else ""
        return (f"_Measured {self.date} at {self.commit_text()} on {self.machine}; load average (1/5/15 min) "
                f"{loads(self.load_start)} at the start{end}{busy}{took}; `{self.command}`._{quick}")

    def comment(self):
        return f"<!-- stamp {json.dumps(self.to_json(), sort_keys=True)} -->"


def read(body):
    """The `Stamp` written in a section's body, None when it has none (written before the harness)."""
    found = COMMENT.search(body)
    if not found:
        return None
    try:
        return Stamp.from_json(json.loads(found.group(1)))
    except (ValueError, TypeError):
        return None
