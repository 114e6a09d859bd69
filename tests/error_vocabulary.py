"""Finds every error code the code base can raise, by reading its source (tests/test_error_codes.py).

A code is a string literal given as:
- `code="…"` to a call of ApplicationError or one of its subclasses (any class whose name ends
  in Error, Denied, Refused, Invalid, Missing, Unavailable, Rejected, Large, or is UnsafeTarget),
  or assigned as `code = "…"` in the body of such a class;
- a value of the `_DRF_CODES` map (config/errors.py) or the first argument of `envelope(…)`;
- a member of `RiskCode` (trading/risk.py) or `ErrorCode` (providers/interface.py);
- the code of a side-effect gate: `Gate(False, "…", …)` (trading/services/control.py).

Sandboxes and localnets that play an outside service (providers/*/sandbox*, */localnet/*)
speak that service's vocabulary and are not read.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "config",
    "configuration",
    "trading",
    "providers",
    "webhooks",
    "delegations",
    "deposits",
    "treasury",
    "solver",
)
SKIP_PARTS = {"tests", "migrations", "localnet", "sandbox", "__pycache__"}
ERROR_SUFFIXES = ("Error", "Denied", "Refused", "Invalid", "Missing", "Unavailable", "Rejected", "Large", "Target")
ENUMS = {"RiskCode", "ErrorCode"}


@dataclass(frozen=True)
class Found:
    code: str
    where: str


def _name(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


NOT_OURS = {"ValidationError", "DjangoValidationError"}  # Django's form/model validation codes


def _is_error_class(name: str) -> bool:
    return name not in NOT_OURS and (name.endswith(ERROR_SUFFIXES) or "Error" in name)


def _source_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if SKIP_PARTS & set(rel.parts) or any(p.startswith("sandbox") for p in rel.parts):
                continue
            yield rel, path


def error_codes() -> list[Found]:
    out: list[Found] = []
    for rel, path in _source_files():
        tree = ast.parse(path.read_text(), filename=str(rel))
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                func = _name(node.func)
                if _is_error_class(func):
                    for kw in node.keywords:
                        if kw.arg == "code" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                            out.append(Found(kw.value.value, where))
                if func == "envelope" and node.args and isinstance(node.args[0], ast.Constant):
                    out.append(Found(node.args[0].value, where))
                if func == "Gate" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                    out.append(Found(node.args[1].value, where))
            elif isinstance(node, ast.ClassDef):
                bases = {_name(b) for b in node.bases}
                if node.name in ENUMS or (_is_error_class(node.name) and bases):
                    for stmt in node.body:
                        if (
                            isinstance(stmt, ast.Assign)
                            and isinstance(stmt.value, ast.Constant)
                            and isinstance(stmt.value.value, str)
                            and any(
                                isinstance(t, ast.Name) and (t.id == "code" or node.name in ENUMS) for t in stmt.targets
                            )
                        ):
                            out.append(Found(stmt.value.value, f"{rel}:{stmt.lineno}"))
            elif isinstance(node, ast.Assign) and any(_name(t) == "_DRF_CODES" for t in node.targets):
                for value in node.value.values:
                    out.append(Found(value.elts[0].value, where))
    return out
