"""PNG quicklooks of land-cover maps with a legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_path
from .write import NODATA

NODATA_RGB = (255, 255, 255)


def render_labels(labels: np.ndarray, colors: list[tuple[int, int, int]], size: int = 512):
    """Label raster -> RGB image, nearest-neighbour scaled so its longer side is about `size`."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:] = NODATA_RGB
    for code, color in enumerate(colors):
        lut[code] = color
    image = Image.fromarray(lut[labels])
    scale = max(1, size // max(labels.shape))
    return image.resize((labels.shape[1] * scale, labels.shape[0] * scale), Image.NEAREST)


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
