"""Stale figures, found by the harness: a section is stale when the code it measures changed since its stamp.

Each `Section` declares the paths it measures (its tool module, the tfvrec packages and files whose
behaviour its figures describe, the configs it trains). A published section is **fresh** when

- it has a stamp (`tools/harness/stamp.py`) naming a commit of this repository,
- its measured paths had no uncommitted changes when it was measured, and
- ``git diff <commit> -- <paths>`` (that commit against the working tree: later commits and uncommitted
  changes alike) is empty and no untracked file has appeared under those paths;

otherwise it is **stale**, with the reason: no stamp (measured before the harness recorded commits —
an unknown commit is stale), quick-mode figures, no section in tools/ declaring it, a commit unknown
here (e.g. a shallow clone), measured with uncommitted changes, or the files changed since.

    python tools/bench.py --stale          # lists every section of docs/benchmarks.md, stale ones first

`tests/tools/test_benchmarks_fresh.py` asserts that no section of docs/benchmarks.md is stale.
"""
import dataclasses
import subprocess
from typing import List, Optional

from harness import REPO
from harness import document


class UnknownCommit(Exception):
    """The stamp names a commit this repository does not have."""


@dataclasses.dataclass
class Verdict:
    name: str
    stale: bool
    reason: str
    commit: Optional[str] = None
    changed: List[str] = dataclasses.field(default_factory=list)

    def __str__(self):
        return f"{'STALE' if self.stale else 'fresh'}  {self.name}: {self.reason}"


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def changed_since(commit, paths, repo=REPO):
    """Files under ``paths`` that differ between ``commit`` and the working tree (committed since, or not yet
    committed), plus new untracked files there. Raises `UnknownCommit`."""
    if not commit or _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise UnknownCommit(commit)
    paths = list(paths)
    diff = _git(repo, "diff", "--name-only", commit, "--", *paths)
    if diff.returncode != 0:
        raise UnknownCommit(f"{commit}: {diff.stderr.strip()}")
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "--", *paths)
    return sorted(set(diff.stdout.split()) | set(untracked.stdout.split()))


def verdict(name, stamp, paths, repo=REPO):
    """Is the figure of section ``name``, stamped ``stamp`` (None: no stamp), measuring ``paths``, stale?"""
    if stamp is None:
        return Verdict(name, True, "no stamp: measured before the harness recorded the commit (unknown commit)")
    if stamp.quick:
        return Verdict(name, True, "quick-mode figures (toy sizes) in the document", stamp.commit)
    if paths is None:
        return Verdict(name, True, "no section in tools/ declares it (its code paths are unknown)", stamp.commit)
    if stamp.dirty:
        return Verdict(name, True, f"measured with uncommitted changes to {', '.join(stamp.dirty)}", stamp.commit,
                       list(stamp.dirty))
    try:
        changed = changed_since(stamp.commit, paths, repo)
    except UnknownCommit:
        return Verdict(name, True, f"commit {stamp.commit or '(none)'} is not in this repository's history",
                       stamp.commit)
    if changed:
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        return Verdict(name, True, f"measured code changed since {stamp.commit[:12]}: {shown}", stamp.commit, changed)
    return Verdict(name, False, f"measured code unchanged since {stamp.commit[:12]} ({stamp.date})", stamp.commit)


def check(path=document.DEFAULT_PATH, sections=None, repo=REPO):
    """A `Verdict` for every section of the document at ``path`` (``sections``: ``{name: Section}``, default
    every section of the catalogue)."""
    if sections is None:
        from harness import catalogue
        sections = catalogue.sections()
    out = []
    for name, stamp in document.stamps(path).items():
        section = sections.get(name)
        out.append(verdict(name, stamp, None if section is None else section.measured_paths(), repo))
    return out


def stale(path=document.DEFAULT_PATH, sections=None, repo=REPO):
    """The stale sections' verdicts (empty when every figure is fresh)."""
    return [v for v in check(path, sections, repo) if v.stale]
