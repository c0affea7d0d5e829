"""Inference engines: one torch definition of each computation, run by the fastest engine.

Every computation the map runs (DNs to class probabilities, or the dense cells of a patch
classifier) is written once, as a torch module. On the CPU it is converted to OpenVINO, which
fuses Mish and the input scaling into the convolutions and runs bf16 on AVX512-BF16/AMX:
about 3× torch's bf16 on the same cores (`benchmarks/bench_engines.py`), with fp32
probabilities within a few 1e-6 of torch's. On CUDA, or where OpenVINO cannot be imported or
cannot convert the network, torch runs the same module (with one warning for the fallback).

A converted network is kept on disk (`$GEOLULC_CACHE_DIR`, else `$XDG_CACHE_HOME/geolulc`)
under a key made of the model's digest (card and weights), the computation, the engine's
version and the source of the code that defines the network, and with the SHA-256 of its
files: a cached file that does not match is ignored and rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from geolulc.defaults import ENGINES
from geolulc.errors import FallbackWarning, ParameterError
from geolulc.io.atomic import atomic_path

if TYPE_CHECKING:  # imported where a network is converted: it takes seconds to load
    import openvino as ov

log = logging.getLogger(__name__)

#: Static-shape compilations kept per computation (tiles of a map share one shape; OpenVINO
#: runs a static shape about 15 % faster than a dynamic one). Other shapes run dynamic.
MAX_STATIC_SHAPES = 4


def resolve_engine(name: str, device: torch.device) -> str:
    """The engine to run on `device`; `auto`: OpenVINO on the CPU where installed, torch on CUDA.

    Asking for OpenVINO on a GPU is an error; asking for it where it is not installed falls back
    with a warning.
    """
    if name not in ENGINES:
        raise ParameterError(f"unknown engine {name!r}: use {', '.join(ENGINES)}")
    if device.type != "cpu":
        if name == "openvino":
            raise ParameterError("the openvino engine runs on the CPU: use `engine='torch'` (or "
                               "auto) with a CUDA device")
        return "torch"
    if name == "torch":
        return "torch"
    try:
        import openvino  # noqa: F401
    except ImportError as exc:  # not installed, or an install that cannot load its libraries
        warnings.warn(f"OpenVINO cannot be imported ({str(exc).splitlines()[0][:160]}): "
                      "inference runs in torch, about 3× slower", FallbackWarning, stacklevel=2)
        return "torch"
    return "openvino"


class TorchRunner:
    """A module run by torch on the device.

    Channels-last, bf16 autocast for a bf16 computation, batches pinned and sent to the GPU
    without blocking. With `bf16_input` the batches are uint16 arrays of bf16 bit patterns.
    """

    def __init__(self, module: torch.nn.Module, precision: str, device: torch.device,
                 bf16_input: bool = False) -> None:
        self.module = module.to(device).eval()
        # documented by `Module.to`, but missing from torch's typed overloads
        self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.precision, self.device, self.bf16_input = precision, device, bf16_input

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the module on a batch; the result comes back as float32 numpy."""
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(x))
            if self.bf16_input:
                batch = batch.view(torch.bfloat16)
            if self.device.type == "cuda":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            with (torch.autocast(self.device.type, dtype=torch.bfloat16)
                  if self.precision == "bf16" else contextlib.nullcontext()):
                out = self.module(batch)
            return out.float().cpu().numpy()


def cache_dir() -> Path:
    """Folder for converted networks: `$GEOLULC_CACHE_DIR`, else `$XDG_CACHE_HOME/geolulc`.

    Without `$XDG_CACHE_HOME`, `~/.cache/geolulc`.
    """
    root = os.environ.get("GEOLULC_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "geolulc"


def code_digest(*objects: object) -> str:
    """Digest of the source that defines a computation (functions, classes; constants by repr).

    A cached conversion never outlives a change of the code it was converted from.
    """
    sources = []
    for obj in objects:
        if not callable(obj):
            sources.append(repr(obj))
            continue
        try:
            sources.append(inspect.getsource(obj))
        except (OSError, TypeError):
            sources.append(repr(obj))
    return hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16]


class OpenVINORunner:
    """A module converted to OpenVINO once (or loaded from the disk cache) and compiled for the CPU.

    It is compiled at the given precision, statically for each of the first input shapes it meets.
    """

    def __init__(self, program: torch.nn.Module, example: torch.Tensor, precision: str,
                 key: str | None, bf16_input: bool = False) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        cached = self._cached(key) if key else None
        if cached is None:
            # Compiled as read back from its saved form, as every later run reads it from the
            # cache: the network as converted in memory gives slightly different bf16 results
            # (0.03 % of a tile's labels), and a map must not depend on whether it came first.
            cached = self._saved(self._convert(program, example), key)
        if bf16_input:  # the batches come as bf16 bit patterns (`TorchRunner`)
            steps = ov.preprocess.PrePostProcessor(cached)
            steps.input().tensor().set_element_type(ov.Type.bf16)
            cached = steps.build()
        self.bf16_input = bf16_input
        self.model: ov.Model = cached
        self.dynamic = self.core.compile_model(self.model, "CPU", self.config)
        self.static: dict[tuple[int, ...], ov.CompiledModel] = {}

    def _convert(self, program: torch.nn.Module, example: torch.Tensor) -> ov.Model:
        import openvino as ov

        program = program.cpu().float().eval().requires_grad_(False)
        shape = ov.PartialShape([-1, *example.shape[1:2], *([-1] * (example.ndim - 2))])
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent constants
            return ov.convert_model(program, example_input=example, input=[shape])

    def _paths(self, key: str) -> tuple[Path, Path, Path]:
        import openvino as ov

        base = cache_dir() / "openvino" / f"{key}-{ov.__version__.split('-')[0]}"
        xml, weights, digest = (base.with_name(base.name + ext) for ext in (".xml", ".bin", ".sha256"))
        return xml, weights, digest

    def _cached(self, key: str) -> ov.Model | None:
        xml, weights, digest = self._paths(key)
        try:
            xml_bytes, bin_bytes = xml.read_bytes(), weights.read_bytes()
            expected = digest.read_text().strip()
        except OSError:
            return None
        if hashlib.sha256(xml_bytes + bin_bytes).hexdigest() != expected:
            log.warning("the cached OpenVINO network %s does not match its digest: rebuilt", xml)
            return None
        import openvino as ov

        try:
            return self.core.read_model(xml_bytes.decode(),
                                        ov.Tensor(np.frombuffer(bin_bytes, dtype=np.uint8)))
        except (RuntimeError, UnicodeDecodeError) as exc:
            log.warning("the cached OpenVINO network %s is unreadable (%s): rebuilt", xml,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return None

    def _saved(self, model: ov.Model, key: str | None) -> ov.Model:
        """`model` serialised and read back; stored in the disk cache under `key` if it can be."""
        import openvino as ov

        with tempfile.TemporaryDirectory(prefix="geolulc-ov-") as scratch:
            xml = Path(scratch) / "model.xml"
            ov.save_model(model, xml, compress_to_fp16=False)
            xml_bytes, bin_bytes = xml.read_bytes(), xml.with_suffix(".bin").read_bytes()
        if key:
            self._store(key, xml_bytes, bin_bytes)
        return self.core.read_model(xml_bytes.decode(),
                                    ov.Tensor(np.frombuffer(bin_bytes, dtype=np.uint8)))

    def _store(self, key: str, xml_bytes: bytes, bin_bytes: bytes) -> None:
        xml, weights, digest = self._paths(key)
        try:
            xml.parent.mkdir(parents=True, exist_ok=True)
            for path, data in ((weights, bin_bytes), (xml, xml_bytes)):
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
            with atomic_path(digest) as tmp:  # last: the pair is trusted only once it is there
                tmp.write_text(hashlib.sha256(xml_bytes + bin_bytes).hexdigest() + "\n")
        except OSError as exc:
            log.info("OpenVINO network not cached (%s)", exc)

    def _compiled(self, shape: tuple[int, ...]) -> ov.CompiledModel:
        if shape in self.static:
            return self.static[shape]
        if len(self.static) >= MAX_STATIC_SHAPES:
            return self.dynamic
        fixed = self.model.clone()
        try:
            fixed.reshape(list(shape))
            self.static[shape] = self.core.compile_model(fixed, "CPU", self.config)
        except RuntimeError as exc:  # a shape the network cannot take statically: run dynamic
            log.debug("no static compilation for %s: %s", shape, exc)
            self.static[shape] = self.dynamic
        return self.static[shape]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the compiled module on a batch, static where its shape was compiled.

        The batch is taken as float32, or as bf16 bit patterns for a `bf16_input` runner.
        """
        import openvino as ov

        compiled = self._compiled(x.shape)
        if self.bf16_input:
            return compiled(ov.Tensor(np.ascontiguousarray(x, dtype=np.uint16), list(x.shape),
                                      ov.Type.bf16))[0]
        return compiled(np.ascontiguousarray(x, dtype=np.float32))[0]


def make_runner(module: torch.nn.Module, precision: str, example: torch.Tensor, engine: str,
                device: torch.device, key: str | None, bf16_input: bool = False
                ) -> Callable[[np.ndarray], np.ndarray]:
    """The runner of `module` in `precision` on `engine`.

    `example` is an input of the right rank and channels for the conversion; with `bf16_input`
    the runner takes uint16 arrays holding bf16 bit patterns. An OpenVINO conversion that fails
    warns once and gives the torch runner, so the map is the same, only slower.
    """
    if engine == "openvino":
        try:
            return OpenVINORunner(module, example, precision, key and f"{key}-{precision}",
                                  bf16_input)
        except Exception as exc:  # noqa: BLE001 - any failure of the optional engine falls back
            warnings.warn(f"OpenVINO could not compile the network ({_summary(exc)}): "
                          "inference runs in torch", FallbackWarning, stacklevel=2)
    return TorchRunner(module, precision, device, bf16_input)


def _summary(exc: Exception) -> str:
    """One line of an engine's error: its summary line where it gives one, else its first line.

    OpenVINO's converter lists the operations it failed on after 'Summary:'.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if "Summary:" in lines and lines.index("Summary:") + 1 < len(lines):
        return lines[lines.index("Summary:") + 1].lstrip("- ")[:200]
    return lines[0][:200] if lines else type(exc).__name__
