"""Whole-tile benchmark of `geolulc change`: two dates of a full 10980 × 10980 tile at 10 m.

Uses the tile `bench_tile.py` builds (the real 29RKH L2A product upsampled ×10, as COGs) as both
dates: the second is the same pixels under another item id and date, so both are classified
(their chunk caches differ) and the spectral pass reads both; nothing may change. Prints wall
time, peak RSS, pixels per second and the changed share.

    python benchmarks/bench_change_tile.py [--work /tmp/geolulc-bench] [--device cpu]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    tile_arguments(parser)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    first = build_tile(args.data, args.work)
    item = json.loads(first.read_text())
    item["id"] += "-later"
    item["properties"]["datetime"] = "2020-02-24T11:21:44Z"
    second = args.work / "item-later.json"
    second.write_text(json.dumps(item))
    out = args.work / "change"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "geolulc", "change", "--before", str(first),
                           "--after", str(second), "--device", args.device, "--out", str(out),
                           "--name", "tile",
                           "--json", "--quiet"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    change = json.loads(proc.stdout)["changes"][0]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "device": args.device,
        "tile": "10980 x 10980 at 10 m, two dates (real 29RKH L2A upsampled x10)",
        "wall_s": round(wall, 1), "peak_rss_mb": round(peak / 1024),
        "valid_pixels": change["valid_cells"], "changed_pixels": change["changed_cells"],
        "pixels_per_s": round(2 * change["valid_cells"] / wall),
        "method": change["method"]}, indent=2))


if __name__ == "__main__":
    main()
