"""The import rules of the architecture (pyproject.toml, [tool.importlinter]) hold, and break.

Dependencies point one way: the front door (``fl_har_app``) -> ``clients`` / ``strategies`` (which
never import each other) -> ``protocol`` -> the core ``fl_har`` and ``attacks`` (independent);
the core imports no Flower; attacks import neither the core nor Flower.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fl_har_app", "clients", "strategies", "protocol", "fl_har", "attacks")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300, check=False,
    )


def test_the_repository_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("fl_har/_violation.py", "import flwr\n", "plain library"),
        ("fl_har/_violation.py", "import strategies.server_app\n", "one way"),
        ("attacks/_violation.py", "import fl_har.config\n", "one way"),
        ("clients/_violation.py", "import strategies.curious\n", "one way"),
        ("strategies/_violation.py", "import fl_har_app.main\n", "one way"),
        ("attacks/_violation.py", "import pandas\n", "pure functions"),
    ],
)
def test_a_deliberate_violation_breaks_a_contract(tmp_path, module, line, contract):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / module).write_text(line)
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    text = " ".join(result.stdout.split())  # contract names wrap across lines
    listing = text.split(" dependencies. ", 1)[1].split(" Contracts: ", 1)[0].strip("- ")
    verdicts = re.findall(r"([A-Z].*?) (KEPT|BROKEN)", listing)
    broken = [name for name, verdict in verdicts if verdict == "BROKEN"]
    assert any(contract in name for name in broken), (broken, result.stdout)
