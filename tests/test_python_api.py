"""docs/python_api.md runs as written: every ```python block, in order, as one script."""
import os
import re
import subprocess
import sys

from conftest import REPO


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", open(path).read(), re.S)


def test_every_code_block_of_the_python_api_page_runs(tmp_path):
    blocks = python_blocks(os.path.join(REPO, "docs", "python_api.md"))
    assert len(blocks) >= 5
    os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
    # One script, as a reader would paste the page, run in a fresh interpreter (outside this
    # test process's two logical CPUs); runs/, data_cache/ and export/ go to the temp folder.
    script = "\n".join(f"print('--- block {n}')\n{block}" for n, block in enumerate(blocks, 1))
    (tmp_path / "page.py").write_text(script)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "page.py"], cwd=tmp_path, capture_output=True, text=True, env=env)
    failed = re.findall(r"--- block (\d+)", out.stdout)
    assert out.returncode == 0, f"block {failed[-1] if failed else '?'} failed:\n{out.stderr[-3000:]}"
    assert f"--- block {len(blocks)}" in out.stdout and "serving_default" in out.stdout
