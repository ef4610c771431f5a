"""Every benchmark section's quick mode, in the test suite: a broken benchmark fails here, not on an idle machine.

Two child processes run ``tools/bench.py --sections ... --quick`` at once, each on half of the sections (a
real run of the entry point, as a user starts it, no test fixtures; each uses about one core), with their runs,
caches and reports in a temporary directory;
each section then has its own test reading the run's summary (``-k NAME``: the child runs only the sections
selected, unless the budget test is). Sections whose real data set is absent skip with the reason (as every
real-data test does); a peer of the bench extra that is not installed does not stop a section: its quick mode
runs tfvrec's side alone, and the test warns which peers did not run.
Together the quick sections must fit the budget (`test_quick_sections_fit_the_budget`).
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
# All quick sections together, in CPU seconds of the child process and its own children (servers): two cores
# for three minutes. CPU time, not wall time: the test machine may be shared, the budget is for an idle one.
BUDGET_CPU_SECONDS = 2 * 180


class PeerNotRun(UserWarning):
    """A quick section ran without a peer of the bench extra (not installed)."""


def selected_sections(request):
    """The sections whose tests this session runs: all of them when the budget test runs, else those selected
    (``pytest tests/tools/test_sections.py -k chaos_train`` runs that section's quick mode alone)."""
    names = set()
    for item in request.session.items:
        if item.module is not request.module:
            continue
        if item.originalname == "test_quick_sections_fit_the_budget":
            return set(SECTIONS)
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


@pytest.fixture(scope="module")
def quick_run(request, tmp_path_factory):
    """``tools/bench.py --sections <those selected with their data> --quick``, in two children at once:
    ``(summary, report text, log text)``."""
    root = tmp_path_factory.mktemp("bench_quick")
    wanted = selected_sections(request)
    runnable = [name for name, s in SECTIONS.items()
                if name in wanted and all(os.path.isdir(os.path.join(SHARED_DATA, d)) for d in s.data)]
    without = os.environ.get("TFVREC_BENCH_WITHOUT", "").split()  # e.g. "cornac implicit faiss hnswlib torch": as CI
    env = dict(os.environ, PYTHONPATH=REPO, TFVREC_SHARED_DATA=SHARED_DATA)
    children = []
    for n, group in enumerate(halves(runnable)):
        part = root / f"part{n}"
        part.mkdir()
        summary, report, log = part / "summary.json", part / "quick.md", part / "bench.log"
        command = [sys.executable, os.path.join(REPO, "tools", "bench.py"), "--sections", *group, "--quick",
                   "--report", str(report), "--summary", str(summary), "--runs-root", str(part / "runs"),
                   "--cache-dir", str(part / "cache")]
        if without:
            command += ["--without", *without]
        out = open(log, "w")
        children.append((subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT), out,
                         summary, report, log))
    results, reports, logs = {}, [], []
    for child, out, summary, report, log in children:
        try:
            child.wait(timeout=3600)
        finally:
            if child.poll() is None:
                child.kill()
            out.close()
        if summary.exists():
            results.update(json.loads(summary.read_text()))
        reports.append(report.read_text() if report.exists() else "")
        logs.append(log.read_text())
    return results, "\n".join(reports), "\n".join(logs)


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


def test_quick_sections_fit_the_budget(quick_run, record_property):
    results, _, _ = quick_run
    cpu = {name: e["cpu_seconds"] + e["children_cpu_seconds"] for name, e in results.items()}
    wall = sum(e["seconds"] for e in results.values())
    record_property("quick_sections_cpu_seconds", round(sum(cpu.values()), 1))
    record_property("quick_sections_wall_seconds", round(wall, 1))
    table = ", ".join(f"{n} {c:.0f}" for n, c in sorted(cpu.items(), key=lambda x: -x[1]))
    print(f"quick sections: {sum(cpu.values()):.0f} CPU s ({table}); {wall:.0f} s wall on this machine")
    assert sum(cpu.values()) <= BUDGET_CPU_SECONDS, f"quick sections take {sum(cpu.values()):.0f} CPU s: {table}"
