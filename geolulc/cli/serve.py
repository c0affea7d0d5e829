"""`geolulc serve`."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import FiniteRange, friendly_errors
from geolulc.defaults import COLLECTIONS, DEFAULT_COLLECTION, EARTH_SEARCH
from geolulc.errors import DependencyError, ParameterError


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Port to listen on.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("geolulc-serve"),
              show_default=True, help="Folder of the job records (SQLite) and the jobs' files.")
@click.option("--catalog", default=EARTH_SEARCH, show_default=True,
              help="STAC API the map jobs search.")
@click.option("--collection", type=click.Choice(COLLECTIONS), default=DEFAULT_COLLECTION,
              show_default=True, help="Collection the map jobs search.")
@click.option("--token", envvar="GEOLULC_TOKEN", default=None,
              help="Secret every request must carry (Authorization: Bearer TOKEN); also "
                   "$GEOLULC_TOKEN.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Map jobs run at the same time.")
@click.option("--max-queue", type=click.IntRange(1), default=16, show_default=True,
              help="Map jobs that may wait; more are refused (503).")
@click.option("--max-area", type=FiniteRange(min=0, min_open=True), default=2500.0,
              show_default=True, help="Largest AOI a job may map, in km².")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="Origin allowed to call the API from a browser (repeatable); none by default.")
@friendly_errors
def serve_command(host: str, port: int, data_dir: Path, catalog: str, collection: str,
                  token: str | None, workers: int, max_queue: int, max_area: float,
                  cors_origins: tuple[str, ...]) -> None:
    """Serve the classifier and the mapper over HTTP, with a map page at /.

    POST /classify (patches), POST /maps (an AOI and a date: a job to poll), GET /maps/ID,
    its files and map tiles; the OpenAPI description is at /openapi.json.
    """
    try:
        import uvicorn

        from geolulc.serve.app import ServeConfig, create_app
    except ImportError as exc:
        raise DependencyError(f"geolulc serve needs its extra ({exc.name} is missing): pip "
                              "install 'geolulc[serve]'") from None
    config = ServeConfig(data_dir=data_dir, catalog=catalog, collection=collection, host=host,
                         token=token, workers=workers, max_queue=max_queue,
                         max_area_km2=max_area, cors_origins=cors_origins)
    app = create_app(config)  # its data folder and job store: their errors come first
    sock = listening_socket(host, port)  # then the address: "serving" is said once it is ours
    click.echo(f"geolulc serving on http://{host}:{sock.getsockname()[1]} (jobs in {data_dir})",
               err=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` and listening, or a one-line error (busy, bad host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ParameterError(f"--host {host!r} is not an address of this machine ({exc})") \
            from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ParameterError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return sock
