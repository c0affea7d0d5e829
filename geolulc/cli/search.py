"""`geolulc search`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

import click

from geolulc.cli.main import main
from geolulc.cli.options import (
    aoi_option,
    friendly_errors,
    search_options,
)
from geolulc.errors import GeolulcError


class _SceneRow(TypedDict):
    """One scene as `search` lists it (and prints it with --json)."""

    id: str
    datetime: str | None
    level: str
    cloud_cover: float | None
    processing_baseline: str | None
    aoi_coverage: float | None
    bands: list[str]


@main.command("search")
@aoi_option(required=True)
@search_options
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True,
              help="Most items to fetch.")
@click.option("--json", "as_json", is_flag=True, help="Print the scenes as JSON.")
@friendly_errors
def search_command(aoi: Path, date: str | None, catalog: str, collection: str,
                   max_cloud: float | None, max_area: float, limit: int, as_json: bool) -> None:
    """List the scenes a catalogue holds for an AOI and date, least cloudy first."""
    from geolulc.api import load_aoi, search

    if not date:
        raise GeolulcError("--date is required")
    scenes = search(aoi=aoi, date=date, catalog=catalog, collection=collection,
                    max_cloud=max_cloud, max_area_km2=max_area, limit=limit)
    area = load_aoi(aoi, max_area)
    rows: list[_SceneRow] = [{
        "id": s.id, "datetime": s.datetime.isoformat() if s.datetime else None,
        "level": s.level, "cloud_cover": s.cloud_cover,
        "processing_baseline": s.baseline_text,
        "aoi_coverage": round(s.footprint.intersection(area.geometry).area
                              / area.geometry.area, 3) if s.footprint is not None else None,
        "bands": sorted(s.bands),
    } for s in scenes]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No scenes found.")
        return
    click.echo(f"{'id':<48}{'date':<12}{'level':<6}{'cloud%':>7}{'baseline':>9}{'cover':>7}")
    for r in rows:
        cloud = f"{r['cloud_cover']:.1f}" if r["cloud_cover"] is not None else "-"
        cover = f"{100 * r['aoi_coverage']:.0f}%" if r["aoi_coverage"] is not None else "-"
        click.echo(f"{r['id']:<48}{(r['datetime'] or '-')[:10]:<12}{r['level']:<6}"
                   f"{cloud:>7}{r['processing_baseline'] or '-':>9}{cover:>7}")
    click.echo(f"{len(rows)} scene(s)")
