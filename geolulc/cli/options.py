"""Options and helpers shared by the commands (declared once, like rasterio's `rio/options.py`)."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TextIO, TypeVar, get_args

import click

from geolulc.defaults import (
    COLLECTIONS,
    DEFAULT_COLLECTION,
    DEFAULT_MAX_AREA_KM2,
    EARTH_SEARCH,
    ENGINES,
    Composite,
)
from geolulc.errors import GeolulcError, GeolulcWarning

log = logging.getLogger("geolulc")

_P = ParamSpec("_P")
_R = TypeVar("_R")
#: A command callback, before or after click decorated it.
_F = TypeVar("_F", bound=Callable[..., Any])


class FiniteRange(click.FloatRange):
    """A float option within a range, refusing NaN and infinities (which every range lets by)."""

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        """The number, or click's one-line usage error for a non-finite one."""
        number = float(super().convert(value, param, ctx))
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


#: API parameters whose command-line option has another name.
_API_TO_OPTION = {"max_area_km2": "max_area", "data": "data_dir", "init": "init_model",
                  "teacher": "teacher_model", "windows": "window_files"}
#: API names that another command takes, for messages of a command without them.
_ELSEWHERE = {"scenes": "`geolulc map --scene`"}


def cli_message(message: str) -> str:
    """An API message in the command's terms, with API names turned into the command's options.

    `` `aoi` `` becomes --aoi, `` `method='tv'` `` becomes --method tv; names the command has no
    option for stay as they are.
    """
    ctx = click.get_current_context(silent=True)
    flags = {}
    for param in ctx.command.params if ctx else []:
        if isinstance(param, click.Option):
            longs = [o for o in param.opts if o.startswith("--")] or param.opts
            flags[param.name] = longs[0]

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        option = flags.get(_API_TO_OPTION.get(name, name))
        if option is None:
            return _ELSEWHERE.get(name, match.group(0)) if value is None else match.group(0)
        return f"{option} {value}" if value is not None else option

    return re.sub(r"`([a-z_][a-z0-9_]*)(?:='([^'`]*)')?`", flag, message)


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
    """Warnings as one line on stderr, in the command's terms (no source line)."""
    click.echo(f"Warning: {cli_message(str(message))}", err=True)


def friendly_errors(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn every failure into one line on stderr and a non-zero exit (GEOLULC_DEBUG=1 re-raises)."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except (GeolulcError, GeolulcWarning) as exc:  # a warning made an error by a filter
            click.echo(f"Error: {cli_message(str(exc))}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted: nothing half-written was kept; run the same command "
                       "again to resume from the finished chunks or checkpoint.", err=True)
            sys.exit(130)
        except UnicodeEncodeError as exc:  # a path or name of bytes that are not UTF-8
            bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
            click.echo(f"Error: a path or name holds characters that are not valid UTF-8 "
                       f"({bad.encode('utf-8', 'surrogateescape')!r}); rename it", err=True)
            sys.exit(1)
        except BrokenPipeError:  # `geolulc … | head`: the reader has what it wanted
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)  # as a Unix tool stopped by SIGPIPE, without a message
        except OSError as exc:  # read-only or full disk, a file where a folder should be …
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or type(exc).__name__}{where}", err=True)
            sys.exit(1)
        except Exception as exc:
            if os.environ.get("GEOLULC_DEBUG"):
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            click.echo(f"Error: {type(exc).__name__}: {first} "
                       "(set GEOLULC_DEBUG=1 for the traceback)", err=True)
            sys.exit(2)

    return wrapper


class BatchSize(click.ParamType):
    """A positive integer, or 'auto' (None)."""

    name = "auto|N"

    def convert(self, value: str | int | None, param: click.Parameter | None,
                ctx: click.Context | None) -> int | None:
        """`auto` (or nothing) as None, a positive integer as itself; anything else fails the command."""
        if value in (None, "auto"):
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            self.fail(f"{value!r} is neither 'auto' nor a positive integer", param, ctx)
        return number


BATCH = BatchSize()


def echo_outputs(outputs: dict[str, str]) -> None:
    """One line per written file, kind then path."""
    width = max(map(len, outputs)) + 2
    for kind, path in outputs.items():
        click.echo(f"  {kind:<{width}}{path}")


def aoi_option(required: bool = False) -> Callable[[_F], _F]:
    """The `--aoi` option, optional unless `required`, declared once for every command that takes it."""
    return click.option(
        "--aoi", type=click.Path(path_type=Path), required=required,
        help="Area of interest: GeoJSON, GeoPackage or Shapefile, in any CRS (all features are "
             "merged).")


def search_options(func: _F, with_date: bool = True) -> _F:
    """Options shared by every command that searches a STAC catalogue."""
    date = click.option("--date", help="Required with --aoi: a day (2023-06-15), a month "
                        "(2023-06), a year (2023) or a range (2023-06-01/2023-07-15).")
    options = [
        *([date] if with_date else []),
        click.option("--catalog", default=EARTH_SEARCH, show_default=True,
                     help="STAC API URL (Earth Search, Planetary Computer, Copernicus Data "
                     "Space, or any other)."),
        click.option("--collection", default=DEFAULT_COLLECTION, show_default=True,
                     help=f"Collection to search, e.g. {', '.join(COLLECTIONS)}."),
        click.option("--max-cloud", type=FiniteRange(0, 100), default=None,
                     help="Skip scenes whose cloud cover (%) is above this."),
        click.option("--max-area", type=FiniteRange(min=0, min_open=True),
                     default=DEFAULT_MAX_AREA_KM2, show_default=True,
                     help="Largest AOI accepted, in km²."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def output_options(func: _F) -> _F:
    """Options shared by `map` and `change` for patch selection and outputs."""
    options = [
        click.option("--min-clear", type=FiniteRange(0, 1), default=0.5,
                     show_default=True, help="Share of clear (not cloud, not no-data) pixels a "
                     "patch needs to be classified."),
        click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
                     default=Path("outputs"), show_default=True, help="Output folder."),
        click.option("--name", default=None,
                     help="Output file prefix (default: the AOI's name, and for map the date)."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def masking_options(func: _F) -> _F:
    """Cloud masking and compositing options shared by `map` and `change`."""
    options = [
        click.option("--composite", type=click.Choice(get_args(Composite)),
                     default="auto", show_default=True,
                     help="Combine the acquisitions of the period: median = per pixel the "
                     "median of the clear reflectance, best = per cell the clearest "
                     "acquisition (both classified once); mean-probability = classify every "
                     "acquisition and average each class's probability over the clear ones, "
                     "mode = their most frequent label; none = least cloudy scenes only; auto "
                     "= median for a period of several days."),
        click.option("--mask-dilate", type=click.IntRange(0, 100), default=0, show_default=True,
                     help="Grow cloud and shadow masks by this many pixels."),
        click.option("--max-acquisitions", type=click.IntRange(1), default=12,
                     show_default=True, help="Least cloudy acquisitions used by a composite."),
        click.option("--l2a", type=click.Choice(["auto", "toa", "as-is"]), default="auto",
                     show_default=True,
                     help="L2A input: toa = put a modelled atmosphere back (from the item's sun "
                     "angle and AOT layer) so models trained on L1C see L1C-like reflectance; "
                     "as-is = feed bottom-of-atmosphere values; auto = toa for L1C models (all "
                     "bundled ones)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func




#: `--engine`, for every command that runs a model.
engine_option = click.option(
    "--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
    help="Inference engine: openvino (CPU; about 3× torch there), torch (CPU or CUDA); "
    "auto = openvino on the CPU where installed, torch on a GPU. Same maps.")


def scale_options(func: _F) -> _F:
    """Arithmetic, streaming and distribution options shared by `map` and `change`."""
    for option in reversed([
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
                     default="auto", show_default=True,
                     help="Inference arithmetic; auto: bf16 on GPUs and on CPUs with native "
                     "bf16 (about 1.6× faster there), else fp32."),
        engine_option,
        click.option("--chunk-rows", type=click.IntRange(1), default=None,
                     help="Map rows read and classified at a time (the unit of streaming, "
                     "resuming and distribution); fewer rows use less memory, and the map is the "
                     "same for any value. Default: 16 for a patch classifier, about 500 (one row "
                     "of tiles) for a per-pixel model."),
        click.option("--workers", type=click.IntRange(1), default=None,
                     help="Run the chunks on a local Dask cluster of this many processes."),
        click.option("--scheduler", default=None,
                     help="Run the chunks on an existing Dask cluster (tcp://HOST:PORT)."),
    ]):
        func = option(func)
    return func




def parse_bands(text: str | None) -> list[str] | None:
    """`--bands B04,B03,B02` (or red,green,blue) as canonical names.

    An unknown band is a one-line error.
    """
    if not text:
        return None
    from geolulc.api import normalise_band

    try:
        bands = [normalise_band(b) for b in text.split(",") if b.strip()]
    except ValueError as exc:
        raise GeolulcError(f"--bands: {exc} (use B01…B12, B8A or common names)") from None
    if not bands:
        raise GeolulcError(f"--bands {text!r} names no band (e.g. B04,B03,B02)")
    return bands
