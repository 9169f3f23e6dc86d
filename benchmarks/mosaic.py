"""A visual comparison: a few test faces through fcz, and through JPEG and AVIF at the same bpp.

    python benchmarks/mosaic.py [FOLDER] [--faces 4] [--quality N | --bits N] [--model ID] [--out benchmarks/results]

Rows are faces; columns: original, fcz, fcz error, JPEG, JPEG error, AVIF, AVIF error.
fcz runs as `fcz encode` would with the same --quality / --bits / --model (default: the
default weights at their default setting).
JPEG (4:2:0) and AVIF (4:4:4) use, per face, the quality whose file size is closest to fcz's.
Error images show clip(8 (x - y) / 255 + 0.5, 0, 1) per channel: mid-grey is exact.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataclasses import dataclass
from typing import Callable, Iterable

import click
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facecodec.metrics import bits_per_pixel, psnr  # noqa: E402

from benchmarks.common import (DEFAULT_FOLDER, DEFAULT_OUT, OperatingPoint, TestImage, check_device,  # noqa: E402
                               device_option, fcz_setting_options, load_images, progress)
from benchmarks.operating_points import avif, fcz, fcz_choice, jpeg, label, setting_words  # noqa: E402

ERROR_GAIN = 8
JPEG_QUALITIES = range(1, 101)
AVIF_QUALITIES = range(0, 101, 2)  # AVIF is ~100x slower to encode than JPEG; steps of 2 are fine enough


def error_image(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """clip(8 (x - y) / 255 + 0.5, 0, 1) per channel, for 8-bit x (original) and y (decoded); float64 H x W x C."""
    difference = np.asarray(original, dtype=np.float64) - np.asarray(decoded, dtype=np.float64)  # no uint8 wrap
    return np.clip(ERROR_GAIN * difference / 255 + 0.5, 0, 1)


@dataclass(frozen=True)
class Coded:
    point: OperatingPoint
    decoded: np.ndarray
    bpp: float
    psnr_db: float

    def caption(self, name: str) -> str:
        return f"{name} {setting_words(self.point.setting)}\n{self.bpp:.3f} bpp, {self.psnr_db:.1f} dB"


def code(point: OperatingPoint, pixels: np.ndarray) -> Coded:
    data = point.encode(pixels)
    decoded = np.asarray(point.decode(data).convert("RGB"))
    return Coded(point, decoded, bits_per_pixel(len(data), pixels.shape[1], pixels.shape[0]), psnr(pixels, decoded))


def closest_rate(pixels: np.ndarray, make: Callable[[int], OperatingPoint], settings: Iterable[int],
                 target_bpp: float) -> Coded:
    """The setting whose real file size on this image is closest to ``target_bpp``."""
    return min((code(make(s), pixels) for s in settings), key=lambda c: abs(c.bpp - target_bpp))


def pick_faces(images: list[TestImage], count: int) -> list[TestImage]:
    """``count`` faces spread evenly over the (name-sorted) folder: deterministic, and not just the A's."""
    indices = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    return [images[i] for i in dict.fromkeys(indices)]


def make_mosaic(faces: list[TestImage], fcz_point: OperatingPoint, path: Path) -> list[dict]:
    """Render the mosaic to ``path``; return, per face, the settings and numbers shown."""
    columns = 7
    fig, axes = plt.subplots(len(faces), columns, figsize=(columns * 1.9, len(faces) * 2.25), squeeze=False)
    chosen = []
    with progress(faces, label="mosaic") as bar:
        for row, face in zip(axes, bar):
            x = face.pixels
            ours = code(fcz_point, x)
            jpg = closest_rate(x, lambda q: jpeg(q, subsampling=2), JPEG_QUALITIES, ours.bpp)
            av = closest_rate(x, avif, AVIF_QUALITIES, ours.bpp)
            tiles = [(x, f"original\n{Path(face.name).stem[:24]}"),
                     (ours.decoded, ours.caption("fcz")), (error_image(x, ours.decoded), "fcz error (x8)"),
                     (jpg.decoded, jpg.caption("JPEG 4:2:0")), (error_image(x, jpg.decoded), "JPEG error (x8)"),
                     (av.decoded, av.caption("AVIF 4:4:4")), (error_image(x, av.decoded), "AVIF error (x8)")]
            for ax, (tile, title) in zip(row, tiles):
                ax.imshow(tile, interpolation="nearest")
                ax.set_title(title, fontsize=7.5)
                ax.set_axis_off()
            chosen.append({"image": face.name, **{name: {"setting": c.point.setting, "bpp": round(c.bpp, 4),
                                                          "psnr_db": round(c.psnr_db, 2)}
                                                   for name, c in (("fcz", ours), ("jpeg", jpg), ("avif", av))}})
    fig.suptitle(f"{label(fcz_point.codec)} at {setting_words(fcz_point.setting)} vs JPEG and AVIF at the "
                 f"closest file size; "
                 f"error = clip(8(x-y)/255 + 0.5, 0, 1)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return chosen


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_FOLDER)
@click.option("--faces", type=click.IntRange(1, 12), default=4, show_default=True)
@fcz_setting_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True)
@device_option
def main(folder: Path, faces: int, quality: int | None, bits: int | None, weights_id: str | None, out: Path,
         device: str) -> None:
    """Save mosaic.png: a few faces from FOLDER through fcz, JPEG and AVIF at matched bpp."""
    check_device(device)
    ours = fcz(*fcz_choice(quality, bits, weights_id), device)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mosaic.png"
    chosen = make_mosaic(pick_faces(load_images(folder), faces), ours, path)
    for face in chosen:
        click.echo(f"{face['image']}: " + "; ".join(f"{k} {v['setting']} {v['bpp']:.3f} bpp {v['psnr_db']:.2f} dB"
                                                    for k, v in face.items() if k != "image"))
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
