"""The import layers (README, "Architecture"), read from the source with `ast`: nothing is imported or run.

    config (composes the apps)      evaluation (measures them)
            |                               |
            v                               v
    api   insights  →  chat  →  kb  →  accounts
                         (every app)
                              |
                              v
                            core (shared primitives: text, citation markers, lazy singletons)

An arrow is "may import". Product apps never import the measurement app or the tests, no app imports one above it,
the settings import no app at all, so loading them cannot load a model, a task or a benchmark, and `core` imports
no Docent module outside itself, nor Django: every app may use it.

import-linter (layers and forbidden contracts in pyproject.toml) is the maintained tool for these rules; until it
is a dependency this test states them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_APPS = ("accounts", "kb", "chat", "api", "insights")
ALL_APPS = (*PRODUCT_APPS, "evaluation")
# What each product app may import of the others (apart from itself): the layer order above.
MAY_IMPORT = {
    "accounts": {"core"},
    "kb": {"accounts", "core"},
    "chat": {"kb", "accounts", "core"},
    "api": {"chat", "kb", "accounts", "core"},
    "insights": {"chat", "kb", "accounts", "core"},
}
# Upward imports still in the tree, each with its reason; the test fails when one disappears, so the list shrinks.
KNOWN_UPWARD = {
    # The sharing panel's "who saw this document" list reads chat's SourceShown rows.
    ("kb.sharing", "chat.selectors"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), is_package=path.name == "__init__.py")


def imports_in(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module the source of `module` imports, anywhere in it (function bodies too), as absolute dotted
    names; for `from X import a` both X and X.a, since `a` may be a module."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def modules_of(app: str) -> list[Path]:
    return sorted(path for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts)


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_product_apps_import_neither_the_measurement_app_nor_the_tests() -> None:
    offending = [
        f"{module_name(path)} imports {name}"
        for app in PRODUCT_APPS
        for path in modules_of(app)
        for name in sorted(imports_of(path))
        if top(name) in ("evaluation", "tests")
    ]
    assert offending == []


def test_no_product_app_imports_one_above_it() -> None:
    upward = set()
    for app in PRODUCT_APPS:
        for path in modules_of(app):
            for name in imports_of(path):
                other = top(name)
                if other in (*ALL_APPS, "config", "core") and other != app and other not in MAY_IMPORT[app]:
                    upward.add((module_name(path), ".".join(name.split(".")[:2])))
    # Both `chat.selectors` and `chat.selectors.document_viewers` name the same edge: keep module-level pairs.
    assert upward == KNOWN_UPWARD


def test_core_imports_no_app_nor_django() -> None:
    """core is the lowest layer: plain Python that every app may import and that imports none of them."""
    offending = [
        f"{module_name(path)} imports {name}"
        for path in modules_of("core")
        for name in sorted(imports_of(path))
        if top(name) in (*ALL_APPS, "config", "tests", "django")
    ]
    assert modules_of("core") and offending == []


def test_the_settings_import_no_app_module() -> None:
    """config.settings and every config module it reaches (config.services, ...) import no app."""
    seen: set[str] = set()
    todo = [module_name(path) for path in (ROOT / "config" / "settings").glob("*.py")]
    offending = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = ROOT / Path(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if not path.exists():
            continue  # `from config.settings.base import env`: env is a name, not a module
        for imported in imports_of(path):
            if top(imported) in ALL_APPS:
                offending.append(f"{name} imports {imported}")
            elif top(imported) == "config":
                todo.append(imported)
    assert "config.services" in seen  # the walk followed settings into config's own modules
    assert offending == []


def test_the_walk_sees_imports_inside_functions_and_relative_ones() -> None:
    """The checks above can fail: a function-level and a relative import are both found."""
    source = "def f():\n    from evaluation.qa import summarise\n\nfrom .models import Chunk\nfrom . import selectors\n"
    found = imports_in(source, "kb.sharing")
    assert {"evaluation.qa", "evaluation.qa.summarise", "kb.models", "kb.models.Chunk", "kb.selectors"} <= found
    in_a_package = imports_in("from .models import A\nfrom ..kb import ingest\n", "chat", is_package=True)
    assert {"chat.models.A", "kb.ingest"} <= in_a_package
