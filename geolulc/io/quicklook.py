"""PNG quicklooks of land-cover maps with a legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from geolulc.io.atomic import atomic_path
from geolulc.io.rasters import NODATA

NODATA_RGB = (255, 255, 255)


def render_labels(
    labels: np.ndarray, colors: list[tuple[int, int, int]], size: int = 512,
) -> Image.Image:
    """Label raster -> RGB image, nearest-neighbour scaled so its longer side is about `size`.

    A whole 10 m tile is subsampled first, never drawn at full size.
    """
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:] = NODATA_RGB
    for code, color in enumerate(colors):
        lut[code] = color
    step = -(-max(labels.shape) // (2 * size))  # keep up to twice `size`, then resize down
    labels = labels[::step, ::step]
    if max(labels.shape) > size:
        factor = size / max(labels.shape)
        return Image.fromarray(lut[labels]).resize(
            (max(1, round(labels.shape[1] * factor)), max(1, round(labels.shape[0] * factor))),
            Image.Resampling.NEAREST)
    image = Image.fromarray(lut[labels])
    scale = max(1, size // max(labels.shape))
    return image.resize((labels.shape[1] * scale, labels.shape[0] * scale), Image.Resampling.NEAREST)


def write_quicklook(
    path: str | Path, labels: np.ndarray, classes: list[str],
    colors: list[tuple[int, int, int]], title: str = "",
) -> Path:
    """Map on the left, legend of the classes present (with their share) on the right."""
    image = render_labels(labels, colors)
    font = ImageFont.load_default()
    counts = np.bincount(labels.ravel(), minlength=256)
    mapped = counts[: len(classes)].sum() or 1
    entries = [(colors[i], f"{name} {100 * counts[i] / mapped:.1f}%")
               for i, name in enumerate(classes) if counts[i]]
    if counts[NODATA]:
        entries.append((NODATA_RGB, "no data / cloud"))
    line, pad = 18, 10
    legend_w = 230
    height = max(image.height, len(entries) * line + 3 * pad + line) + 2 * pad
    canvas = Image.new("RGB", (image.width + legend_w + 3 * pad, height), (245, 245, 245))
    canvas.paste(image, (pad, pad + line))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad // 2), title, fill=(0, 0, 0), font=font)
    x = image.width + 2 * pad
    y = pad + line
    for color, text in entries:
        draw.rectangle([x, y, x + 14, y + 12], fill=color, outline=(0, 0, 0))
        draw.text((x + 20, y), text, fill=(0, 0, 0), font=font)
        y += line
    path = Path(path)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def render_true_colour(rgb: np.ndarray, size: int = 512, white_dn: float = 2750.0) -> Image.Image:
    """(3, h, w) red, green, blue DN -> an RGB image scaled like the EuroSAT JPEGs.

    About 2,750 DN is white; the image's longer side is `size` pixels; no data is white.
    """
    step = -(-max(rgb.shape[1:]) // (2 * size))
    rgb = rgb[:, ::step, ::step]
    image = np.clip(rgb.astype(np.float32) / white_dn * 255, 0, 255).astype(np.uint8)
    image[:, np.all(rgb == 0, axis=0)] = 255
    factor = size / max(rgb.shape[1:])
    return Image.fromarray(np.moveaxis(image, 0, -1)).resize(
        (max(1, round(rgb.shape[2] * factor)), max(1, round(rgb.shape[1] * factor))),
        Image.Resampling.BILINEAR)
