"""The rules of docs/architecture.md that code review alone would let slip, read from the source.

- A payment's and a refund's status is written in one place, gateway/services/payments/lifecycle.py.
- No private name (``_x``) is imported from another module.
- Imports point downwards: the domain imports no framework, services import no entry point.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "drivers", "merchant_portal", "sandbox_bank")
LIFECYCLE = ROOT / "gateway" / "services" / "payments" / "lifecycle.py"


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def status_writes(module: ast.Module) -> list[int]:
    """Lines that assign ``<payment or refund>.status`` or ``.refunded_minor``."""
    lines = []
    for node in ast.walk(module):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id in ("payment", "refund")
                and target.attr in ("status", "refunded_minor")
            ):
                lines.append(node.lineno)
    return lines


def test_the_checks_see_what_they_look_for() -> None:
    """The scans below find what they forbid (a check that cannot fail is no check)."""
    assert status_writes(tree(LIFECYCLE))
    sample = ast.parse("from gateway.services.payments.lifecycle import _history\n")
    assert private_imports(sample, "gateway.entrypoints.api.payments")


def test_only_the_lifecycle_module_writes_a_payments_or_refunds_status() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources()
        if path != LIFECYCLE and path.parts[len(ROOT.parts)] != "sandbox_bank"  # the bank's own
        for line in status_writes(tree(path))
    ]
    assert offenders == [], "move status changes into payments.lifecycle: " + ", ".join(offenders)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(module: ast.Module, name: str) -> list[str]:
    found = []
    for node in ast.walk(module):
        if isinstance(node, ast.ImportFrom) and node.module and node.module != name:
            found += [
                f"{node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


def test_no_private_name_crosses_a_module_boundary() -> None:
    offenders = {
        str(path.relative_to(ROOT)): names
        for path in sources()
        if (names := private_imports(tree(path), module_name(path)))
    }
    assert offenders == {}


LAYERS = [
    ("gateway/domain", ("flask", "sqlalchemy", "requests", "serial", "gateway.services",
                        "gateway.adapters", "gateway.entrypoints")),
    ("gateway/services", ("flask", "gateway.entrypoints", "merchant_portal")),
    ("gateway/adapters", ("flask", "gateway.services", "gateway.entrypoints")),
    ("drivers", ("flask", "sqlalchemy", "gateway.services", "gateway.entrypoints")),
]  # fmt: skip


@pytest.mark.parametrize(("folder", "forbidden"), LAYERS, ids=[f for f, _ in LAYERS])
def test_imports_point_downwards(folder: str, forbidden: tuple[str, ...]) -> None:
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(tree(path)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
                for name in names
                if any(name == f or name.startswith(f + ".") for f in forbidden)
            ]
    assert offenders == []
