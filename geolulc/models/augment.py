"""Training augmentation that spans the gap between EuroSAT patches and what `map` feeds a model.

The EuroSAT RGB JPEGs are compressed (smoothed, blocky) renderings of L1C tiles from a few
European acquisitions; the map gives the network raw DN of any scene, any atmosphere, any
processing baseline, with sensor noise and windows that run off the data. Each transform below
covers one of those differences; all work in the model's input units (DN × dn_scale +
dn_offset, see `geolulc.models.model.normalise`), so one DN offset means the same for every
kind of training patch.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from geolulc.core.windows import fill_unclear
from geolulc.io.atmosphere import WAVELENGTH_UM
from geolulc.models.model import clip_bounds
from geolulc.models.network import dihedral_view

#: The EuroSAT JPEGs' bands, in the order a JPEG holds them.
JPEG_BANDS = ("B04", "B03", "B02")


@dataclass(frozen=True)
class Augmentation:
    """Strength of each transform; 0 switches it off.

    Values are in DN (reflectance × 10000) where they are radiometric, so they read the same for
    RGB and multispectral patches.
    """

    shift: int = 4  # largest random shift (pixels, mirrored borders)
    gain: float = 0.05  # per-patch gain 1 ± gain (illumination, calibration)
    band_gain: float = 0.0  # per-band gain 1 ± band_gain (relative calibration, baselines)
    offset_dn: float = 0.0  # per-band offset ± offset_dn (baselines, residual L2A restoration)
    haze_dn: float = 0.0  # additive path radiance up to haze_dn at B02, Ångström-shaped
    noise_dn: float = 0.0  # sensor noise σ up to noise_dn + signal / 200 (SNR ≈ 200)
    sharpen: float = 0.0  # blur (t < 0) or sharpen (t > 0) by up to this amount
    jpeg: float = 0.0  # share of patches re-compressed as JPEG (quality 50-95)
    partial: float = 0.0  # share of patches whose part beyond a random edge is no-data,
    # filled as the map fills it (`fill_unclear`)

    def as_dict(self) -> dict:
        """The strengths as a plain dict, recorded with the training run's settings."""
        return asdict(self)


#: `basic`: the geometric augmentation and gain jitter of the first models. `raw`: every
#: difference between EuroSAT's JPEG/TIFF patches and a raw L1C/L2A scene window.
PRESETS = {
    "basic": Augmentation(),
    "raw": Augmentation(gain=0.08, band_gain=0.04, offset_dn=60.0, haze_dn=400.0, noise_dn=15.0, sharpen=0.6,
                        jpeg=0.3, partial=0.2),
}


def dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random one of the eight rotations/flips per sample: overhead imagery has no 'up'."""
    codes = torch.randint(0, 8, (x.shape[0],), generator=generator)
    out = torch.empty_like(x)
    for code in range(8):
        sel = codes == code
        if sel.any():
            out[sel] = dihedral_view(x[sel], code)
    return out


def shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each sample by up to `pixels` with mirrored borders.

    A class does not depend on where the patch grid falls.
    """
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pixels,) * 4, mode="reflect")
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def radiometry(x: torch.Tensor, bands: list[str], aug: Augmentation, dn_scale: float,
               generator: torch.Generator) -> torch.Tensor:
    """Random gain, per-band offset and haze: the spread one surface shows in real data.

    That range comes from sensors' calibration, processing baselines, atmospheres and the L2A
    restoration.

    Haze adds path radiance that falls with wavelength as λ^-α (α 0.5-2, the Ångström
    exponents of coarse to fine aerosol; Rayleigh alone would be ≈ 4),
    the difference between a clear European day and a hazy subtropical coast.
    """
    n, c = x.shape[:2]
    gain = _uniform((n, 1, 1, 1), 1 - aug.gain, 1 + aug.gain, generator)
    if aug.band_gain:
        gain = gain * _uniform((n, c, 1, 1), 1 - aug.band_gain, 1 + aug.band_gain, generator)
    add = torch.zeros((n, c, 1, 1))
    if aug.offset_dn:
        add = _uniform((n, c, 1, 1), -aug.offset_dn, aug.offset_dn, generator)
    if aug.haze_dn:
        lam = torch.tensor([WAVELENGTH_UM[b] for b in bands]).reshape(1, c, 1, 1)
        alpha = _uniform((n, 1, 1, 1), 0.5, 2.0, generator)
        amount = _uniform((n, 1, 1, 1), 0, aug.haze_dn, generator)
        amount = amount * (torch.rand((n, 1, 1, 1), generator=generator) < 0.5)
        add = add + amount * (lam / WAVELENGTH_UM["B02"]) ** -alpha
    return x * gain + add * dn_scale


def sharpness(x: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Blur or sharpen by a random t: (1 + t)·x − t·(3×3 binomial blur of x)."""
    n, c = x.shape[:2]
    taps = torch.tensor([1.0, 2.0, 1.0]) / 4
    kernel = (taps[:, None] * taps[None, :]).expand(c, 1, 3, 3)
    blurred = nn.functional.conv2d(nn.functional.pad(x, (1,) * 4, mode="reflect"), kernel,
                                   groups=c)
    t = _uniform((n, 1, 1, 1), -amount, amount, generator)
    return x + t * (x - blurred)


def noise(x: torch.Tensor, aug: Augmentation, dn_scale: float, dn_offset: float,
          generator: torch.Generator) -> torch.Tensor:
    """Gaussian sensor noise, σ = floor + signal / 200 in DN, floor up to `noise_dn`."""
    n = x.shape[0]
    floor = _uniform((n, 1, 1, 1), 0, aug.noise_dn, generator)
    signal = torch.clamp((x - dn_offset) / dn_scale, min=0)
    sigma = (floor + signal / 200) * dn_scale
    return x + sigma * torch.randn(x.shape, generator=generator)


def jpeg(x: torch.Tensor, bands: list[str], share: float, generator: torch.Generator,
         high: torch.Tensor | None = None) -> torch.Tensor:
    """Re-compress the B04/B03/B02 of a share of the patches as 8-bit JPEG (quality 50-95).

    The JPEG is made in the 0-255 scale of the EuroSAT JPEGs: raw windows are sharper, JPEGs
    blockier, and a model should not learn either. Only where those bands are 8-bit units (their
    clip `high` at most 255): a model that clips them higher would lose its bright pixels to the
    JPEG.
    """
    if not set(JPEG_BANDS) <= set(bands):
        return x
    idx = [bands.index(b) for b in JPEG_BANDS]
    if high is not None and bool((high.flatten()[idx] > 255).any()):
        return x
    chosen = torch.nonzero(torch.rand(x.shape[0], generator=generator) < share).flatten().tolist()
    qualities = torch.randint(50, 96, (len(chosen),), generator=generator).tolist()
    out = x.clone()
    for i, quality in zip(chosen, qualities):
        rgb = x[i, idx].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32)
        out[i, idx] = torch.from_numpy(decoded.transpose(2, 0, 1).copy())
    return out


def edge_mask(size: int, generator: torch.Generator) -> np.ndarray:
    """Clear-pixel mask of a window cut by a straight scene edge of random direction.

    The edge leaves 5-50 % of the window without data (Sentinel-2 swath and tile edges are straight
    lines).
    """
    angle = float(torch.rand(1, generator=generator)) * 2 * np.pi
    share = 0.05 + 0.45 * float(torch.rand(1, generator=generator))
    rows, cols = np.indices((size, size)) - (size - 1) / 2
    distance = rows * np.sin(angle) + cols * np.cos(angle)
    return distance <= np.quantile(distance, 1 - share)


def partial(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Cut a share of the patches by a scene edge and fill the gap exactly as the map does."""
    chosen = torch.nonzero(torch.rand(x.shape[0], generator=generator) < share).flatten().tolist()
    out = x.clone()
    for i in chosen:
        clear = edge_mask(x.shape[-1], generator)
        out[i] = torch.from_numpy(np.ascontiguousarray(fill_unclear(x[i].numpy(), clear)))
    return out


def augment(x: torch.Tensor, bands: list[str], aug: Augmentation, clip: list,
            dn_scale: float, dn_offset: float, generator: torch.Generator) -> torch.Tensor:
    """One augmented batch (N, bands, H, W) in input units, clipped as the map clips."""
    out = dihedral(x, generator)
    if aug.shift:
        out = shift(out, aug.shift, generator)
    if aug.partial:
        out = partial(out, aug.partial, generator)
    out = radiometry(out, bands, aug, dn_scale, generator)
    if aug.sharpen:
        out = sharpness(out, aug.sharpen, generator)
    if aug.noise_dn:
        out = noise(out, aug, dn_scale, dn_offset, generator)
    low, high = clip_bounds(clip, len(bands))
    out = torch.clamp(out, min=low, max=high)
    if aug.jpeg:
        out = jpeg(out, bands, aug.jpeg, generator, high)
    return out

