"""The documentation holds together: the README is a short entry page whose links all resolve, every
page in docs/ is on the site, and the generated references name modules and a command that exist.

The site itself is built by `.ci/run` (`mkdocs build --strict`: broken links and anchors, pages
missing from the navigation and unreadable docstrings are errors); the examples on the pages are
run by tests/test_readme.py. These checks need neither mkdocs nor the test data.
"""

from __future__ import annotations

import importlib
import re

import click
import pytest

from conftest import ROOT

DOCS = ROOT / "docs"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def links(path) -> list[str]:
    """Relative link targets of a Markdown page (no URLs, no in-page anchors), without anchors."""
    return [target.split("#")[0] for target in LINK.findall(path.read_text())
            if not re.match(r"[a-z]+:", target) and not target.startswith("#")]


def test_readme_is_an_entry_page_with_links_that_resolve():
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 200, "details belong in docs/, not README.md"
    targets = links(readme)
    for page in ("getting-started", "cli", "api", "how-it-works", "models", "l2a",
                 "change-detection", "benchmarks", "limitations"):
        assert f"docs/{page}.md" in targets, page
    for target in targets:
        assert (ROOT / target).is_file(), target


def test_doc_pages_link_to_files_that_exist():
    for page in DOCS.glob("*.md"):
        for target in links(page):
            assert (DOCS / target).is_file(), f"{page.name}: {target}"


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_on_the_site():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = nav_pages(config["nav"])
    assert sorted(nav) == sorted(p.name for p in DOCS.glob("*.md"))
    assert nav[0] == "index.md"


def test_generated_references_name_what_exists():
    api = (DOCS / "api.md").read_text()
    modules = re.findall(r"^::: ([\w.]+)$", api, re.M)
    assert {"geolulc.api", "geolulc.errors"} <= set(modules)
    for module in modules:
        importlib.import_module(module)
    cli = (DOCS / "cli.md").read_text()
    module = re.search(r"^\s+:module: (\S+)$", cli, re.M).group(1)
    command = re.search(r"^\s+:command: (\S+)$", cli, re.M).group(1)
    group = getattr(importlib.import_module(module), command)
    assert isinstance(group, click.Group) and {"map", "change"} <= set(group.commands)
