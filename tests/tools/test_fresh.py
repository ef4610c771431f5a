"""The harness's stale-figure check, its stamp and its run reuse, on a temporary git repository.

Planted: a section stamped at commit A; a change to a measured path after A makes it stale, a change
elsewhere leaves it fresh; so do uncommitted and untracked changes, a stamp with no commit, a commit
unknown to the repository, quick figures, and a section measured with its code uncommitted.
"""
import os
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
from harness import Section, code, document, fresh  # noqa: E402
from harness.stamp import Stamp, read  # noqa: E402


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def write(repo, path, text):
    full = os.path.join(str(repo), path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


@pytest.fixture
def repo(tmp_path):
    """A git repository at commit A: a measured package, a tool, an unrelated file, a document."""
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.org")
    git(tmp_path, "config", "user.name", "t")
    write(tmp_path, "pkg/model.py", "SPEED = 1\n")
    write(tmp_path, "tools/bench_x.py", "def run(ctx):\n    return '## x'\n")
    write(tmp_path, "README.md", "readme\n")
    write(tmp_path, ".gitignore", "runs/\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "A")
    return tmp_path


PATHS = ("tools/bench_x.py", "pkg")


def stamped(repo, paths=PATHS, quick=False):
    return Stamp.capture(repo, paths, "python tools/bench.py --sections x", quick=quick).finish()


def commit(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def test_a_section_is_fresh_until_its_measured_code_changes(repo):
    stamp = stamped(repo)
    assert stamp.commit == git(repo, "rev-parse", "HEAD") and not stamp.dirty and not stamp.tree_dirty
    assert not fresh.verdict("x", stamp, PATHS, repo).stale

    write(repo, "README.md", "changed elsewhere\n")  # not measured: still fresh, committed or not
    assert not fresh.verdict("x", stamp, PATHS, repo).stale
    commit(repo, "B: elsewhere")
    assert not fresh.verdict("x", stamp, PATHS, repo).stale

    write(repo, "pkg/model.py", "SPEED = 2\n")  # measured, uncommitted: stale
    verdict = fresh.verdict("x", stamp, PATHS, repo)
    assert verdict.stale and verdict.changed == ["pkg/model.py"] and "changed since" in verdict.reason
    commit(repo, "C: the measured code")  # and committed: stale
    assert fresh.verdict("x", stamp, PATHS, repo).changed == ["pkg/model.py"]


def test_a_new_untracked_file_under_a_measured_folder_makes_it_stale(repo):
    stamp = stamped(repo)
    write(repo, "pkg/new.py", "x = 1\n")
    assert fresh.verdict("x", stamp, PATHS, repo).changed == ["pkg/new.py"]
    write(repo, "runs/out.txt", "ignored\n")  # git-ignored output: not code
    assert fresh.verdict("x", stamp, ("runs",) + PATHS, repo).changed == ["pkg/new.py"]


def test_a_change_reverted_is_fresh_again(repo):
    stamp = stamped(repo)
    write(repo, "pkg/model.py", "SPEED = 2\n")
    commit(repo, "B")
    write(repo, "pkg/model.py", "SPEED = 1\n")
    commit(repo, "C: back")
    assert not fresh.verdict("x", stamp, PATHS, repo).stale


def test_what_is_stale_without_a_usable_stamp(repo):
    assert fresh.verdict("x", None, PATHS, repo).stale  # measured before stamps: unknown commit
    stamp = stamped(repo)
    assert fresh.verdict("x", stamp, None, repo).reason.startswith("no section in tools/ declares it")
    assert "quick-mode" in fresh.verdict("x", stamped(repo, quick=True), PATHS, repo).reason
    stamp.commit = "0" * 40
    assert "not in this repository's history" in fresh.verdict("x", stamp, PATHS, repo).reason


def test_a_figure_of_uncommitted_measured_code_is_stale_and_says_dirty(repo):
    write(repo, "tools/bench_x.py", "def run(ctx):\n    return '## y'\n")
    stamp = stamped(repo)
    assert stamp.dirty == ["tools/bench_x.py"] and "-dirty (uncommitted changes in the measured code" in stamp.line()
    verdict = fresh.verdict("x", stamp, PATHS, repo)
    assert verdict.stale and "uncommitted" in verdict.reason
    git(repo, "checkout", "--", "tools/bench_x.py")
    write(repo, "README.md", "edited\n")  # dirty elsewhere only: said, and fresh
    other = stamped(repo)
    assert not other.dirty and other.tree_dirty and "outside the measured code only" in other.line()
    assert not fresh.verdict("x", other, PATHS, repo).stale


class Declared:
    """What the check reads of a `Section`: its measured paths (a Section's own module is in tools/ here)."""

    def __init__(self, paths):
        self.paths = paths

    def measured_paths(self):
        return self.paths


def test_a_section_declares_its_own_module_among_its_measured_paths():
    def run(ctx):
        return ""
    section = Section("x", "t", run, paths=("pkg",), options={"n": 1}, quick={"n": 0})
    assert section.measured_paths() == ("tests/tools/test_fresh.py", "pkg")
    assert section.resolve_options(quick=True) == {"n": 0} and section.resolve_options() == {"n": 1}
    with pytest.raises(KeyError):
        section.resolve_options(overrides={"m": 2})
    with pytest.raises(ValueError):
        Section("x", "t", run, quick={"n": 0})  # a quick value for an undeclared option


def test_the_document_round_trip_and_the_check_over_it(repo):
    path = os.path.join(str(repo), "docs", "benchmarks.md")
    write(repo, "docs/benchmarks.md", "# Benchmarks\n\nHeader kept.\n\n<!-- BEGIN old -->\n## Old\n\n_Measured "
                                      "2026-11-22 15:00 UTC on x86_64._\n<!-- END old -->\n")
    document.write_section("x", "## X\n\n| a |\n|---|\n| 1 |", stamped(repo), path)
    document.write_section("y", "## Y", stamped(repo), path)
    text = open(path).read()
    assert text.startswith("# Benchmarks\n\nHeader kept.") and "<!-- BEGIN old -->" in text
    assert list(document.read_sections(path)) == ["old", "x", "y"]
    assert read(document.read_sections(path)["x"]).command == "python tools/bench.py --sections x"
    document.write_section("x", "## X again", stamped(repo), path)  # replaced in place
    assert list(document.read_sections(path)) == ["old", "x", "y"] and "X again" in open(path).read()

    sections = {"x": Declared(PATHS), "y": Declared(("pkg",))}
    verdicts = {v.name: v for v in fresh.check(path, sections, repo)}
    assert verdicts["old"].stale and "no stamp" in verdicts["old"].reason
    assert not verdicts["x"].stale and not verdicts["y"].stale
    write(repo, "pkg/model.py", "SPEED = 3\n")
    assert [v.name for v in fresh.stale(path, sections, repo)] == ["old", "x", "y"]


def test_a_run_is_reused_only_while_its_code_is_unchanged(repo):
    write(repo, "pkg/model.py", "SPEED = 5\n")  # trained with an uncommitted edit
    recorded = code.state(repo)
    assert recorded["dirty"].keys() == {"pkg/model.py"}
    assert code.unchanged(recorded, PATHS, repo) == (True, "")
    write(repo, "README.md", "elsewhere\n")
    assert code.unchanged(recorded, PATHS, repo)[0]
    commit(repo, "B: the edit committed")  # the same content, now committed
    assert code.unchanged(recorded, PATHS, repo)[0]
    write(repo, "pkg/model.py", "SPEED = 6\n")
    same, why = code.unchanged(recorded, PATHS, repo)
    assert not same and "pkg/model.py" in why
    git(repo, "checkout", "--", "pkg/model.py")
    git(repo, "checkout", "-q", "HEAD~1")  # back at A: the edit it was trained with is gone
    assert not code.unchanged(recorded, PATHS, repo)[0]
    assert not code.unchanged(None, PATHS, repo)[0]
