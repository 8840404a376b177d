"""The layering is a contract (pyproject.toml, [tool.importlinter]), checked on every test run.

And the contract can fail: the same check on a copy of the code with one forbidden import added
to allocation/ (the pure core importing shapely) must report it broken.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "allocation", "geo", "boundaries", "store", "api", "placespend")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin"},
        check=False,
    )


def test_the_import_contracts_are_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout


def test_a_forbidden_import_breaks_the_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("data", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    money = tmp_path / "allocation" / "money.py"
    money.write_text(money.read_text() + "\nimport shapely  # noqa: E402\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "allocation/ is pure" in result.stdout and "BROKEN" in result.stdout
    assert "allocation.money -> shapely" in result.stdout
