"""What ``pip install tfvrec`` gives: the shipped configs inside the package (usable by name), the LICENSE."""
import os
import shutil
import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_ships_configs_by_name_and_the_license(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "README.md", "LICENSE"):
        shutil.copy(os.path.join(REPO, name), source)
    for name in ("configs", "tfvrec"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("tfvrec-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    shipped = sorted(os.path.basename(p) for p in os.listdir(os.path.join(REPO, "configs")) if p.endswith(".yaml"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("tfvrec/configs/")) == shipped
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "Apache License" in open(os.path.join(REPO, "LICENSE")).read()
    # Installed (no repository around): a config found by name, from the package.
    probe = subprocess.run([sys.executable, "-c", "from tfvrec import config; "
                            "print(config.resolve_config_path('curatornet_synthetic'))"],
                           cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")),
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip() == str(tmp_path / "site" / "tfvrec" / "configs" / "curatornet_synthetic.yaml")
