"""Whole-tile benchmark of a mean-probability composite of four acquisitions.

Uses the tile `bench_tile.py` builds (the real 29RKH L2A product upsampled ×10, as COGs) as four
acquisitions of one month: the same pixels under four item ids and days, so each is read and
classified and the composite is the mean of four equal maps. Prints wall time, peak RSS and
pixels per second, and the ratio to the one-date map time given with --map-seconds (from
`bench_tile.py` on the same machine).

    python benchmarks/bench_composite_tile.py [--work /tmp/geolulc-bench] [--map-seconds 207.7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

from bench_tile import build_tile, tile_arguments

DAYS = ("2020-02-04", "2020-02-09", "2020-02-14")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    tile_arguments(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--map-seconds", type=float, default=None,
                        help="wall time of one date's map of the tile, for the ratio")
    args = parser.parse_args()
    first = build_tile(args.data, args.work)
    items = [first]
    for day in DAYS:
        item = json.loads(first.read_text())
        item["id"] += f"-{day}"
        item["properties"]["datetime"] = f"{day}T11:21:44Z"
        path = args.work / f"item-{day}.json"
        path.write_text(json.dumps(item))
        items.append(path)
    out = args.work / "composite"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "geolulc", "map",
                           *[arg for item in items for arg in ("--scene", str(item))],
                           "--composite", "mean-probability", "--device", args.device,
                           "--out", str(out), "--name", "tile4", "--json", "--quiet"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    run = json.loads(proc.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cells = run["cells_classified"]
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "device": args.device,
        "tile": "10980 x 10980 at 10 m, four acquisitions (real 29RKH L2A upsampled x10)",
        "composite": run["composite"], "acquisitions": len(items),
        "wall_s": round(wall, 1), "peak_rss_mb": round(peak / 1024),
        "cells": cells, "input_pixels_per_s": round(len(items) * cells / wall),
        "times_the_map": round(wall / args.map_seconds, 2) if args.map_seconds else None,
        "stages_s": run.get("timings_s")}, indent=2))


if __name__ == "__main__":
    main()
