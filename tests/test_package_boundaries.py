"""The Korus sandbox is a package of its own; production code does not import it.

Only the CLI entry (`booking-worker sandbox`) and the demo (which starts a sandbox and
reads its records) may. Every module under `worker/` and `tasks/` is parsed and each
import statement read, including imports inside functions.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = "korus_sandbox"
# Relative to ROOT: files, or folders (every module below them).
ALLOWED = ("worker/cli.py", "worker/demo/")


def imported_modules(tree: ast.AST) -> Iterator[str]:
    """Every absolute module name an import statement in `tree` names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif (  # importlib.import_module("korus_sandbox...") / __import__("...")
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in
            ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def sandbox_importers() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for package in ("worker", "tasks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            names = [m for m in imported_modules(tree)
                     if m == SANDBOX or m.startswith(SANDBOX + ".")]
            if names:
                found[path.relative_to(ROOT).as_posix()] = names
    return found


def is_allowed(relative: str) -> bool:
    return any(relative == a or (a.endswith("/") and relative.startswith(a)) for a in ALLOWED)


def test_only_the_cli_and_the_demo_import_the_sandbox() -> None:
    offenders = {path: names for path, names in sandbox_importers().items()
                 if not is_allowed(path)}
    assert offenders == {}, f"production code imports the sandbox: {offenders}"


def test_the_import_walk_sees_the_allowed_imports() -> None:
    # The walk must find what is there, or the test above could never fail.
    importers = sandbox_importers()
    assert "worker/cli.py" in importers
    assert any(path.startswith("worker/demo/") for path in importers)


def test_the_import_walk_sees_imports_inside_functions_and_by_name() -> None:
    tree = ast.parse(
        "def f():\n    from korus_sandbox.admin import SandboxAdmin\n"
        "import importlib\nimportlib.import_module('korus_sandbox.server')\n"
    )
    assert set(imported_modules(tree)) >= {"korus_sandbox.admin", "korus_sandbox.server"}


def test_the_distribution_installs_the_sandbox_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert f"{SANDBOX}*" in include
    assert (ROOT / SANDBOX / "__init__.py").is_file()
