"""The code a run was trained with, to reuse it only while that code is unchanged.

`state` records the checkout's commit and the content hash of every file with uncommitted changes;
`unchanged(recorded, paths)` says whether ``paths`` hold today what they held then — committed
changes since (``git diff``), files edited, reverted or added since. `tools/harness/runs.py` keeps a
trained run for reuse only while the reusing section's measured paths are unchanged.
"""
import os
import subprocess

from harness import REPO
from harness.stamp import head_commit, uncommitted


def _hashes(repo, files):
    """``{file: git blob hash of its content now, or None when it does not exist}``."""
    out = {}
    present = [f for f in files if os.path.isfile(os.path.join(str(repo), f))]
    if present:
        hashes = subprocess.run(["git", "-C", str(repo), "hash-object", "--", *present], check=True,
                                capture_output=True, text=True).stdout.split()
        out.update(zip(present, hashes))
    out.update({f: None for f in files if f not in out})
    return out


def state(repo=REPO):
    """``{"commit": HEAD, "dirty": {file: content hash}}`` of the checkout now."""
    return {"commit": head_commit(repo), "dirty": _hashes(repo, uncommitted(repo))}


def unchanged(recorded, paths, repo=REPO):
    """``(True, "")`` when the files under ``paths`` are what they were at ``recorded`` (a `state`), else
    ``(False, why)``."""
    from harness.fresh import UnknownCommit, changed_since
    if not recorded or not recorded.get("commit"):
        return False, "no record of the code it was trained with"
    try:
        changed = set(changed_since(recorded["commit"], paths, repo))
    except UnknownCommit:
        return False, f"trained at commit {recorded['commit'][:12]}, unknown here"
    then = {f: h for f, h in recorded.get("dirty", {}).items() if _inside(f, paths)}
    # A file edited then (uncommitted) must hold the same content now; any other must equal the commit's.
    suspects = sorted(changed | set(then))
    now = _hashes(repo, suspects)
    differ = [f for f in suspects if (now[f] != then[f] if f in then else True)]
    if differ:
        return False, "code changed since it was trained: " + ", ".join(differ[:8])
    return True, ""


def _inside(path, paths):
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in paths)
