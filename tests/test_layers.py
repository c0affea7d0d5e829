"""The package's layers import one way: core ← io ← models ← mapping ← change_detection ← api ← serve ← cli.

Every import counts, at module level, inside functions and under TYPE_CHECKING: a lazy import
that points the wrong way is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast

from conftest import ROOT

#: Lower layers first; a module may import its own layer and the ones before it.
LAYERS = ["core", "io", "models", "mapping", "change_detection", "api", "serve", "cli"]
#: Leaf modules every layer may use (they import nothing of geolulc but each other).
LEAVES = {"geolulc", "errors", "defaults", "core"}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "geolulc":
        return None
    return parts[1] if len(parts) > 1 else "geolulc"


def imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m.startswith("geolulc")}


def violations(package) -> list[str]:
    """Every import in `package` (a folder named geolulc) that points to a later layer."""
    wrong = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        own = layer_of(module.removesuffix(".__init__"))
        if own in ("geolulc", "__main__"):
            continue  # the package's lazy exports and `python -m geolulc` see everything
        for target in imports(path):
            other = layer_of(target)
            if own in LEAVES:
                allowed = other in LEAVES  # leaves use leaves only
            else:
                allowed = other in LEAVES or LAYERS.index(other) <= LAYERS.index(own)
            if not allowed:
                wrong.append(f"{module} imports {target}")
    return wrong


def test_layers_point_one_way():
    wrong = violations(ROOT / "geolulc")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    (tmp_path / "geolulc" / "io").mkdir(parents=True)
    (tmp_path / "geolulc" / "core").mkdir()
    (tmp_path / "geolulc" / "io" / "read.py").write_text(
        "def f():\n    from geolulc.mapping.pipeline import run_map\n")
    (tmp_path / "geolulc" / "core" / "grid.py").write_text("from geolulc.io import read\n")
    assert violations(tmp_path / "geolulc") == [
        "geolulc.core.grid imports geolulc.io", "geolulc.io.read imports geolulc.mapping.pipeline"]
