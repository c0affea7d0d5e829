"""Deadlines end the process: a server that accepts connections and never answers is one line and
a non-zero exit within a minute, with the default deadlines (issue 36)."""

import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_search_map_and_scheduler_exit_against_a_silent_listener(data_dir, tmp_path):
    pytest.importorskip("distributed")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # accepts connections, never reads or answers
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    aoi = str(ROOT / "aoi" / "paris-south.geojson")
    commands = {
        "search": ["search", "--aoi", aoi, "--date", "2023-06", "--catalog", url],
        "map": ["map", "--aoi", aoi, "--date", "2023-06", "--catalog", url, "--out",
                str(tmp_path / "a")],
        "scheduler": ["map", "--scene", str(data_dir / "oscd" / "rennes" / "imgs_1"),
                      "--scheduler", url.replace("http", "tcp"), "--out", str(tmp_path / "b")],
    }
    t0 = time.monotonic()
    procs = {name: subprocess.Popen(["geolulc", *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
             for name, args in commands.items()}
    exits = {}
    try:
        while len(exits) < len(procs) and time.monotonic() - t0 < 90:
            for name, proc in procs.items():
                if name not in exits and proc.poll() is not None:
                    exits[name] = time.monotonic() - t0
            time.sleep(0.1)
    finally:
        for proc in procs.values():
            proc.kill()
        sock.close()
    for name, proc in procs.items():
        assert name in exits and exits[name] < 60, (name, exits)
        _, err = proc.communicate()
        assert proc.returncode not in (0, None), (name, err)
        assert "Traceback" not in err, (name, err)
        lines = [ln for ln in err.splitlines() if ln.startswith("Error")]
        assert len(lines) == 1, (name, err)
