"""The import rules (README, "Architecture"), checked by import-linter against the contracts in pyproject.toml.

    evaluation (measures the product: benchmarks, evaluations, their commands)
        ↓
    config (composes the apps: settings, URLs, ASGI, Celery, the launcher and development servers)
        ↓
    api | insights  →  chat  →  kb  →  accounts  →  core

An arrow is "may import", directly or through other modules; `|` means "neither imports the other". Product apps
never import the measurement app or the tests, the settings import no app at all (so loading them cannot load a
model, a task or a benchmark), and the modules of a package inside kb or chat import
one another without cycles. import-linter reads the source (grimp): nothing is imported or run.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
CONTRACT_IDS = [contract["id"] for contract in CONTRACTS]


def lint_imports(*contracts: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on pyproject.toml's contracts (all, or those named), over the packages found from `cwd`."""
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), str(PYPROJECT), "--no-cache", "--no-logo", *selected],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_are_the_five_the_readme_names() -> None:
    assert CONTRACT_IDS == [
        "layers",
        "apps-import-no-measurement",
        "settings-import-no-app",
        "core-is-plain-python",
        "no-cycles-in-kb-or-chat",
    ]


@pytest.mark.parametrize("contract", CONTRACT_IDS)
def test_the_tree_keeps_the_contract(contract: str) -> None:
    result = lint_imports(contract)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_no_contract_ignores_an_import() -> None:
    """No upward import is excused: the sharing panel's "who saw this document" page, the last one, is chat's view."""
    assert [contract["id"] for contract in CONTRACTS if contract.get("ignore_imports")] == []


def _package(root: Path, name: str, files: dict[str, str]) -> None:
    for relative, source in {"__init__.py": "", **files}.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_the_contracts_can_fail(tmp_path: Path) -> None:
    """The same contracts over a small tree that breaks each: upward imports inside functions (kb into chat, chat
    into evaluation), the settings reaching an app through a config module, a relative import closing a cycle."""
    _package(tmp_path, "config", {"settings/__init__.py": "from config import helpers\n", "helpers.py": "import kb\n"})
    _package(tmp_path, "accounts", {})
    _package(
        tmp_path,
        "kb",
        {
            "sharing.py": "from chat import selectors\n",
            "views.py": "def f():\n    from chat.models import Message\n",
            "services.py": "from kb import tasks\n",
            "tasks.py": "from . import services\n",
        },
    )
    chat_bench = "def f():\n    from evaluation import qa\n"
    _package(tmp_path, "chat", {"selectors.py": "", "models.py": "", "bench.py": chat_bench})
    _package(tmp_path, "evaluation", {"qa.py": ""})
    _package(tmp_path, "core", {"text.py": "from django.utils import translation\n"})
    for name in ("api", "insights", "tests"):
        _package(tmp_path, name, {})
    result = lint_imports(cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 5 broken." in result.stdout
    assert "kb.views -> chat.models" in result.stdout
    assert "chat.bench -> evaluation.qa" in result.stdout
    assert "config.helpers -> kb" in result.stdout
    assert "core.text -> django" in result.stdout
    assert "No cycles are allowed in kb." in result.stdout
    assert "- .tasks -> .services (1 import)" in result.stdout
