"""The package layout stays true: dependencies point one way, the pure packages stay pure, the Lambda's path
never loads the local stack (docs/architecture.md).  Each rule is also shown to catch a planted break."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from support.architecture import FLOORS, modules, violations

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "programs_bridge"


def test_the_layout_holds() -> None:
    assert violations(SRC) == []


def test_every_package_says_what_it_holds_and_what_it_may_import() -> None:
    packages = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))
    assert packages == sorted(name for floor in FLOORS for name in floor)
    for name in packages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "May import:" in doc, f"{name}/__init__.py lacks its docstring or its 'May import:' line"


def test_no_loose_modules_beside_the_packages() -> None:
    assert sorted(path.name for path in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A copy of the source to plant breaks in."""
    shutil.copytree(PACKAGE, tmp_path / "programs_bridge")
    return tmp_path


def _plant(src: Path, module: str, line: str, *, in_function: bool = False) -> None:
    path = src / "programs_bridge" / (module.replace(".", "/") + ".py")
    text = f"\n\ndef _planted() -> None:\n    {line}\n" if in_function else f"\n{line}\n"
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("convert.dates", "import boto3", "programs_bridge.convert.dates:"),
        ("convert.rows", "import paramiko", "but convert is pure"),
        ("report.run", "from botocore.exceptions import ClientError", "but report is pure"),
        ("programs_txt.layout", "import aws_lambda_powertools", "but programs_txt is pure"),
        ("ledger.plan", "import boto3", "in ledger only its store adapter may"),
        ("convert.engine", "from programs_bridge.report import conversion", "convert stands below or beside report"),
        ("ledger.plan", "from programs_bridge.delivery import retry", "ledger stands below or beside delivery"),
        ("programs_txt.render", "from programs_bridge.convert.dates import parse_date", "programs_txt stands below"),
        ("cli.main", "from programs_bridge.local import demo", "only inside a function"),
        ("pipeline.run", "from programs_bridge.local.synthetic import generate", "must never load"),
        ("pipeline.observe", "import moto", "must never load"),
    ],
)
def test_a_planted_break_is_caught(planted: Path, module: str, line: str, expected: str) -> None:
    assert violations(planted) == []
    _plant(planted, module, line)
    found = violations(planted)
    assert any(expected in finding for finding in found), found


def test_a_planted_lazy_cycle_is_caught_and_a_lazy_demo_import_is_not(planted: Path) -> None:
    _plant(planted, "cli.demo", "from programs_bridge.local import demo", in_function=True)
    assert violations(planted) == []
    _plant(planted, "convert.dates", "from programs_bridge.convert import rows", in_function=True)
    found = violations(planted)
    assert any(f.startswith("import cycle:") and "programs_bridge.convert.dates" in f for f in found), found


def test_a_new_package_must_be_given_a_floor(planted: Path) -> None:
    (planted / "programs_bridge" / "seeding").mkdir()
    (planted / "programs_bridge" / "seeding" / "__init__.py").write_text('"""New."""\n', encoding="utf-8")
    assert any("has no floor" in finding for finding in violations(planted))


def test_the_walk_sees_every_module() -> None:
    found = modules(SRC)
    assert "programs_bridge.pipeline.handler" in found and "programs_bridge.convert.engine" in found
    assert len(found) == len(list(PACKAGE.rglob("*.py")))
