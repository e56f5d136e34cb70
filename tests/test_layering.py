"""The layers are visible in the folders and kept: the contract imports nothing above it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# what each folder may import from imbench (the contract layer, then upwards); benchmarks/ outside
# its contract is the top layer and may import anything
ALLOWED = {
    "benchmarks/contract": {"benchmarks.contract"},
    "data_recipes": {"benchmarks.contract", "data_recipes"},
    "tasks": {"benchmarks.contract", "data_recipes", "tasks"},
    "baselines": {"benchmarks.contract", "data_recipes", "tasks", "baselines"},
    "gans": {"benchmarks.contract", "data_recipes", "tasks", "gans"},
    "results": {"benchmarks.contract", "results"},
}


def _imbench_imports(path: Path) -> list[str]:
    """The imbench modules ``path`` imports (relative imports resolved), e.g. ``tasks.classification``."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    if path.is_relative_to(ROOT / "benchmarks" / "testing"):
        package = ("testing", *package[2:])  # installed as imbench.testing
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                out.append(".".join([*base, *(node.module or "").split(".")]).strip("."))
            elif (node.module or "").startswith("imbench."):
                out.append(node.module[len("imbench."):])
        elif isinstance(node, ast.Import):
            out += [a.name[len("imbench."):] for a in node.names if a.name.startswith("imbench.")]
    return out


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_folder_imports_only_lower_layers(folder):
    allowed = ALLOWED[folder]
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in _imbench_imports(path):
            if not any(module == a or module.startswith(a + ".") for a in allowed):
                bad.append(f"{path.relative_to(ROOT)} imports imbench.{module}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_the_check_sees_relative_imports():
    found = _imbench_imports(ROOT / "tasks" / "classification" / "track.py")
    assert "benchmarks.contract" in found and "data_recipes.recipes" in found
