"""Every `geolulc` command line printed in the README runs as printed.

Commands that search a catalogue run against the loopback STAC API (which holds only the
2020-02 desert items): they must get as far as the search and fail, if at all, with the one-line
"no scene" error — never a usage error or a traceback. Local commands must succeed.
"""

from __future__ import annotations

import shlex

import pytest

from conftest import ROOT, run_cli


def readme_commands() -> list[str]:
    commands, fence = [], None
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence not in ("", "bash", "sh", "console"):
            continue  # prose, or a Python block
        line = line.strip().removeprefix("$ ")
        part = line[line.index("geolulc "):] if "geolulc " in line else ""
        if part.startswith("geolulc "):
            commands.append(part)
    return commands


COMMANDS = readme_commands()


def test_the_readme_prints_commands():
    assert any(c.startswith("geolulc change --aoi") and "--dates 2018-06 2023-06" in c
               for c in COMMANDS)
    assert sum(c.startswith("geolulc map") for c in COMMANDS) >= 2


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, data_dir, stac_api, tmp_path):
    args = [a.replace("../shared/data", str(data_dir)) for a in shlex.split(command)[1:]]
    if "--aoi" in args:
        args += ["--catalog", stac_api]
    if args[0] in ("map", "change", "download", "evaluate") and "--out" not in args:
        args += ["--out", str(tmp_path)]
    result = run_cli(*args, cwd=ROOT)
    assert "Traceback" not in result.stderr and "Usage:" not in result.stderr, result.stderr
    if "--aoi" in args:
        assert result.returncode == 0 or (result.returncode == 1 and "scene" in result.stderr), \
            result.stderr
    else:
        assert result.returncode == 0, result.stderr
