"""What ``pip install .`` installs: the run, its components and its tools; never the development tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.support.helpers import REPO

INSTALLED = {"common", "schemas", "okta_client", "storage", "transforms", "sinks", "sources", "streaming",
             "pipeline", "tools"}


def test_the_wheel_holds_the_installed_packages_and_the_one_command(tmp_path):
    # A copy of what the project tracks in git (pip builds in the source tree: not in the checkout).
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("okta_personal_lake-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == INSTALLED
    assert not [n for n in names if n.startswith(("devtools/", "bench/", "tests/"))]
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "okta-personal-lake = tools.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
