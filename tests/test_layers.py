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
LEAVES = {"geolulc", "_version", "errors", "defaults", "core"}


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
            if node.module == "geolulc":  # `from geolulc import io` imports a subpackage
                found |= {f"geolulc.{alias.name}" for alias in node.names
                          if (path_of_package(path) / alias.name).exists()
                          or (path_of_package(path) / f"{alias.name}.py").exists()}
    return {m for m in found if m.startswith("geolulc")}


def path_of_package(path):
    """The `geolulc` folder that `path` lies in."""
    return next(p for p in path.parents if p.name == "geolulc")


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


#: What `geolulc/cli` may import besides its own modules: it wraps the API and nothing else
#: (and `geolulc serve` starts the HTTP service, the other front end over the API).
CLI_MAY_IMPORT = {"geolulc", "geolulc._version", "geolulc.api", "geolulc.errors",
                  "geolulc.defaults", "geolulc.serve.app"}


def cli_violations(package) -> list[str]:
    """Imports in `package`/cli of anything but the API, errors, defaults and the CLI itself."""
    wrong = []
    for path in sorted((package / "cli").rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        wrong += [f"{module} imports {target}" for target in sorted(imports(path))
                  if target not in CLI_MAY_IMPORT and not target.startswith("geolulc.cli")]
    return wrong


def test_the_cli_wraps_the_api_only(tmp_path):
    wrong = cli_violations(ROOT / "geolulc")
    assert not wrong, "\n".join(wrong)
    (tmp_path / "geolulc" / "cli").mkdir(parents=True)
    (tmp_path / "geolulc" / "cli" / "map.py").write_text(
        "from geolulc.cli.main import main\nfrom geolulc import io\n\n"
        "def f():\n    from geolulc.io.aoi import load_aoi\n")
    (tmp_path / "geolulc" / "io").mkdir()
    assert cli_violations(tmp_path / "geolulc") == ["geolulc.cli.map imports geolulc.io",
                                                    "geolulc.cli.map imports geolulc.io.aoi"]


def cycles(package) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (any import counts)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        graph[module.removesuffix(".__init__")] = set()
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        if module in ("geolulc", "geolulc.__main__"):
            continue  # the lazy exports see everything by design
        targets = imports(path)
        for node in ast.walk(ast.parse(path.read_text())):  # `from geolulc.models import synth`
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[module] = {t for t in targets if t in graph and t != module
                         and t != "geolulc" and not module.startswith(t + ".")}
    found, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_import_each_other(tmp_path):
    loops = cycles(ROOT / "geolulc")
    assert not loops, loops
    (tmp_path / "geolulc" / "models").mkdir(parents=True)
    (tmp_path / "geolulc" / "models" / "train.py").write_text("from geolulc.models import synth\n")
    (tmp_path / "geolulc" / "models" / "synth.py").write_text(
        "def f():\n    from geolulc.models.train import load_checkpoint\n")
    (tmp_path / "geolulc" / "models" / "__init__.py").write_text("")
    assert cycles(tmp_path / "geolulc") == [["geolulc.models.synth", "geolulc.models.train"]]
