"""Every example printed in README.md and in the documentation pages (docs/*.md) runs as printed.

Commands: every `geolulc` command line in a shell block (fenced as ```, bash, sh or console; in a
block with `$ ` prompts only the prompted lines are commands, the rest is output) runs once, even
when several pages print it. Commands that search a catalogue run against the loopback STAC API,
which holds only the February 2020 desert items of tile 29RKH (`aoi/tiris.geojson`): a search it
can answer must succeed; any other must get as far as the search and fail, if at all, with the
one-line "no scene" error — never a usage error or a traceback. Local commands must succeed.

Python: every ```python block runs on its own, in a subprocess from the repository root, so each
block must be complete (its own imports). The API's catalogue defaults to the loopback one there,
and the same rule as for commands applies to blocks that search.

In both, `../shared/data` is the test data folder, and outputs (a command's `--out`, the
`"outputs"` folder of a Python block) go to a temporary folder. Blocks fenced as `text` are
output, never run; a command too slow for the suite (training for real, a whole tile) must be
written so (or as inline code) and the page must say why.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("", "bash", "sh", "shell", "console")
#: The one area and period the loopback catalogue holds scenes for (see conftest.served_items).
SERVED = ("aoi/tiris.geojson", "2020-02")
#: How a search that finds nothing ends: geolulc's one-line error, or (a Python block whose
#: `search` returned no scene) the prelude's stop below.
NO_SCENE = re.compile(r"(Error: |GeolulcError: )(date \S+: )?no \S+ scene in \S+ covers the AOI")
STOPPED = "stopped: the loopback catalogue holds no scene for this search"


def fenced_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, text) of each fenced code block of a Markdown page, dedented."""
    blocks, fence, lines = [], None, []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            if fence is None:
                fence, lines = line.lstrip()[3:].strip(), []
            else:
                blocks.append((fence, textwrap.dedent("\n".join(lines))))
                fence = None
            continue
        if fence is not None:
            lines.append(line)
    assert fence is None, f"{path.name}: a code block is not closed"
    return blocks


def commands_in(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    found = []
    for line in lines:
        start = line.find("geolulc ")
        # `pip install … && geolulc map …`: the geolulc part; `geolulc/…` paths are no commands
        if start >= 0 and (start == 0 or line[:start].rstrip().endswith("&&")):
            found.append(line[start:])
    return found


def examples() -> tuple[list[str], list[str]]:
    commands, python = [], []
    for page in PAGES:
        for language, text in fenced_blocks(page):
            if language in SHELL:
                commands += [c for c in commands_in(text)
                             if c not in commands and c not in CHECKED_ELSEWHERE]
            elif language == "python" and text.strip() not in python:
                python.append(text.strip())
    return commands, python


#: Commands another test runs as printed and checks more closely (the line the page prints
#: under it): run once, there.
CHECKED_ELSEWHERE = {
    # tests/test_bundled_models.py::test_the_rgb_benchmark_model_scores_what_its_card_and_the_docs_say
    "geolulc evaluate --model eurosat-rgb --data ../shared/data/eurosat/rgb --split val",
}
COMMANDS, PYTHON = examples()


def short(code: str) -> str:
    """A Python block's test id: its first line that is not an import."""
    lines = [line for line in code.splitlines() if line and not line.startswith("import ")]
    return lines[0][:60]


def test_the_pages_print_examples():
    readme = [c for _, t in fenced_blocks(ROOT / "README.md") for c in commands_in(t)]
    assert any(c.startswith("geolulc map --aoi") for c in readme)
    assert any(c.startswith("geolulc map --scene") for c in readme)
    assert any(c.startswith("geolulc change --aoi") and "--dates 2018-06 2023-06" in c
               for c in readme)
    assert any(c.startswith("geolulc change --before") for c in readme)
    assert any(lang == "python" for lang, _ in fenced_blocks(ROOT / "README.md"))
    assert len(PAGES) >= 10 and len(PYTHON) >= 3
    for command in COMMANDS:  # run as one process: no pipes, no chains after the command
        assert not {"&&", "|", ";", ">"} & set(shlex.split(command)), command


def out_options(args: list[str]) -> set[str]:
    """The options of a `geolulc` command (or group subcommand) that name where it writes."""
    import click

    from geolulc.cli import main

    command = main.commands[args[0]]
    if isinstance(command, click.Group) and len(args) > 1:
        command = command.commands[args[1]]
    return {o for p in command.params for o in getattr(p, "opts", []) if o == "--out"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Where the pages' `runs/...` folders go: one for every command, so that a command can use
    what an earlier one of the same page wrote (a generator `synth sample` samples)."""
    return tmp_path_factory.mktemp("runs")


@pytest.mark.parametrize("command", COMMANDS)
def test_command_runs(command, data_dir, stac_api, runs, tmp_path):
    args = [a.replace("../shared/data", str(data_dir)) for a in shlex.split(command)[1:]]
    args = [str(runs / a.removeprefix("runs/")) if a.startswith("runs/") else a for a in args]
    if "--aoi" in args:
        args += ["--catalog", stac_api]
    if out_options(args) and not any(a.startswith(str(runs)) for a in args):
        if "--out" in args:  # e.g. outputs/x: the same name, in the temporary folder
            at = args.index("--out") + 1
            args[at] = str(tmp_path / Path(args[at]).name)
        else:
            args += ["--out", str(tmp_path / "outputs")]
    result = run_cli(*args, cwd=ROOT)
    assert "Traceback" not in result.stderr and "Usage:" not in result.stderr, result.stderr
    if "--aoi" in args and not all(s in args for s in SERVED):
        assert result.returncode == 0 or (result.returncode == 1 and NO_SCENE.match(result.stderr)), \
            result.stderr
    else:
        assert result.returncode == 0, result.stderr


#: Run before each Python block: the API's functions search the loopback catalogue unless the
#: block names one (as `--catalog` is added to commands), and a search that finds nothing stops
#: the block there (the real catalogue would have found scenes).
PRELUDE = f'''
import functools as _functools
import sys as _sys

import geolulc.api as _api


def _loopback(function):
    @_functools.wraps(function)
    def call(*args, **kwargs):
        if kwargs.get("aoi") is not None:
            kwargs.setdefault("catalog", _sys.argv[1])
        found = function(*args, **kwargs)
        if function.__name__ == "search" and not found:
            _sys.exit({STOPPED!r})
        return found
    return call


for _name in ("search", "classify", "make_map", "change"):
    setattr(_api, _name, _loopback(getattr(_api, _name)))
del _name
'''


@pytest.mark.parametrize("code", PYTHON, ids=short)
def test_python_block_runs(code, data_dir, stac_api, tmp_path):
    body = (code.replace("../shared/data", str(data_dir))
            .replace('"outputs"', repr(str(tmp_path / "outputs"))))
    script = tmp_path / "example.py"
    script.write_text(PRELUDE + "\n# --- the example ---\n" + body + "\n")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, str(script), stac_api], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=600)
    if "aoi=" in code and not all(s in code for s in SERVED) and result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1]
        assert last == STOPPED or NO_SCENE.search(last), result.stderr
    else:
        assert result.returncode == 0, result.stderr
