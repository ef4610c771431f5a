"""Every benchmark section's quick mode, in the test suite: a broken benchmark fails here, not on an idle machine.

Two child processes run ``tools/bench.py --sections ... --quick`` at once, each on half of the sections (a
real run of the entry point, as a user starts it, no test fixtures; each uses about one core), with their runs,
caches and reports in a temporary directory, started as soon as the session has collected these tests (they
run beside the rest of the suite: tests/conftest.py);
each section then has its own test reading the run's summary (``-k NAME``: the child runs only the sections
selected). Sections whose real data set is absent skip with the reason (as every
real-data test does); a peer of the bench extra that is not installed does not stop a section: its quick mode
runs tfvrec's side alone, and the test warns which peers did not run.
What the quick sections cost (CPU seconds per section) is printed in the session's summary
(tests/conftest.py): a figure to watch, not a test, since a time depends on the machine it is taken on.
``TFVREC_BENCH_WITHOUT="cornac implicit faiss hnswlib torch"`` runs them as if those peers were not installed
(as in CI, where the ``bench`` extra is not).
"""
import json
import os
import subprocess
import sys
import warnings

import pytest

from conftest import REPO, SHARED_DATA, shared_data

sys.path.insert(0, os.path.join(REPO, "tools"))
from harness import catalogue  # noqa: E402

SECTIONS = catalogue.sections()


class PeerNotRun(UserWarning):
    """A quick section ran without a peer of the bench extra (not installed)."""


def selected_sections(items):
    """The sections whose tests this session runs (of the collected ``items``; ``pytest
    tests/tools/test_sections.py -k chaos_train`` runs that section's quick mode alone)."""
    names = set()
    for item in items:
        if os.path.basename(str(item.fspath)) != "test_sections.py":
            continue
        if item.originalname == "test_quick_section_runs":
            names.add(item.callspec.params["name"])
    return names


def halves(names):
    """The selected sections in two groups for two child processes, one per core (each child uses about one:
    the quick run's wall time halves): the sections reading the posters or UGallery (they share the posters'
    quick features, computed once per child) in one, those reading Flickr F.S or Last.fm in the other, the
    sections without real data dealt out in turn."""
    groups, turn = ([], []), 0
    for name in names:
        data = set(SECTIONS[name].data)
        if data & {"movielens_posters", "ugallery"}:
            groups[0].append(name)
        elif data:
            groups[1].append(name)
        else:
            groups[turn].append(name)
            turn = 1 - turn
    return [g for g in groups if g]


class QuickRun:
    """``tools/bench.py --sections <group> --quick`` for each of `halves` of ``names`` (those with their data),
    started at once in ``root``; `result` waits for them. tests/conftest.py starts one when the session
    has collected these tests, so the children (which wait on nothing of the suite) run beside the tests before
    this module's; the ``quick_run`` fixture starts one itself otherwise."""

    def __init__(self, names, root):
        runnable = [name for name, s in SECTIONS.items()
                    if name in names and all(os.path.isdir(os.path.join(SHARED_DATA, d)) for d in s.data)]
        without = os.environ.get("TFVREC_BENCH_WITHOUT", "").split()  # e.g. "cornac implicit faiss hnswlib torch"
        env = dict(os.environ, PYTHONPATH=REPO, TFVREC_SHARED_DATA=SHARED_DATA)
        self.children, self.done = [], None
        for n, group in enumerate(halves(runnable)):
            part = os.path.join(str(root), f"part{n}")
            os.makedirs(part)
            summary, report, log = (os.path.join(part, f) for f in ("summary.json", "quick.md", "bench.log"))
            command = [sys.executable, os.path.join(REPO, "tools", "bench.py"), "--sections", *group, "--quick",
                       "--report", report, "--summary", summary, "--runs-root", os.path.join(part, "runs"),
                       "--cache-dir", os.path.join(part, "cache")]
            if without:
                command += ["--without", *without]
            out = open(log, "w")
            child = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
            self.children.append((child, out, summary, report, log))

    def result(self):
        """``(summary, report text, log text)`` of every child, once all have ended."""
        if self.done is not None:
            return self.done
        results, reports, logs = {}, [], []
        for child, out, summary, report, log in self.children:
            try:
                child.wait(timeout=3600)
            finally:
                if child.poll() is None:
                    child.kill()
                out.close()
            if os.path.exists(summary):
                with open(summary) as f:
                    results.update(json.load(f))
            for path, into in ((report, reports), (log, logs)):
                if os.path.exists(path):
                    with open(path) as f:
                        into.append(f.read())
        self.done = results, "\n".join(reports), "\n".join(logs)
        return self.done

    def cost(self):
        """One line for the session's summary: the CPU seconds (the child's and its servers') of every section
        that ran, largest first, and their wall time; None before `result`."""
        if self.done is None or not self.done[0]:
            return None
        cpu = {name: e["cpu_seconds"] + e["children_cpu_seconds"] for name, e in self.done[0].items()}
        table = ", ".join(f"{n} {c:.0f}" for n, c in sorted(cpu.items(), key=lambda x: -x[1]))
        wall = sum(e["seconds"] for e in self.done[0].values())
        return f"quick sections: {sum(cpu.values()):.0f} CPU s ({table}); {wall:.0f} s wall on this machine"

    def stop(self):
        for child, out, *_ in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()
            out.close()


@pytest.fixture(scope="module")
def quick_run(request, tmp_path_factory):
    """The session's `QuickRun` (started by tests/conftest.py at collection) or one started now:
    ``(summary, report text, log text)``."""
    started = getattr(request.config, "_tfvrec_quick_run", None)
    if started is None:
        started = QuickRun(selected_sections(request.session.items), tmp_path_factory.mktemp("bench_quick"))
    return started.result()


@pytest.mark.parametrize("name", list(SECTIONS))
def test_quick_section_runs(quick_run, name):
    for data in SECTIONS[name].data:
        shared_data(data)
    results, report, log = quick_run
    assert name in results, f"section {name} never ran; the end of the log:\n{log[-6000:]}"
    entry = results[name]
    assert entry["status"] == "ok", f"section {name} failed:\n{entry.get('error', '')}"
    from harness import document, stamp
    body = document.read_sections(text=report)[name]
    assert body.startswith("## "), body[:200]
    found = stamp.read(body)
    assert found is not None and found.quick and found.load_end is not None
    assert "Quick mode: toy sizes" in body
    if entry["not_run"]:
        parts = "; ".join(f"{what} ({why})" for what, why in entry["not_run"])
        assert "**Not run**" in body
        warnings.warn(PeerNotRun(f"{name}: quick mode ran tfvrec's side without: {parts}"))
