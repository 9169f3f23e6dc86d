"""PSNR against compression ratio for fcz and classical codecs, on the same images in one run.

    python benchmarks/rate_distortion.py [FOLDER] [--quick] [--limit N] [--out benchmarks/results]

Writes rate_distortion.csv / .json (one row per codec setting; the JSON also holds the comparison),
summary.md (BD-rate table, fcz's default curve against JPEG 2000, its monotonicity) and
rd_psnr_bpp.png / rd_psnr_ratio.png into --out.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import csv
import time
from typing import Any, Sequence

import click

from facecodec.devices import resolve_device

from benchmarks.common import (DEFAULT_FOLDER, DEFAULT_OUT, QUICK_IMAGES, REFERENCE_CSV, WARM_UPS, OperatingPoint,
                               TestImage, check_device, device_option, display_path, load_images, measure_image,
                               progress, run_metadata, set_threads, summarize, threads_option, warm_up, write_json)
from benchmarks.operating_points import all_points, default_setting
from benchmarks.report import comparison, write_report

CSV_COLUMNS = ["codec", "setting", "value", "images", "bpp", "compression_ratio", "psnr_db", "psnr_db_std", "ssim",
               "encode_ms", "decode_ms", "file_bytes"]


def measure_points(points: Sequence[OperatingPoint], images: Sequence[TestImage],
                   warm_ups: int = WARM_UPS) -> list[dict[str, Any]]:
    """One summary row per operating point, every point on every image."""
    rows = []
    with progress(length=len(points) * len(images), label="rate-distortion") as bar:
        for point in points:
            warm_up(point, images[0], warm_ups)
            results = []
            for image in images:
                results.append(measure_image(point, image))
                bar.update(1)
            rows.append({**summarize(point, results), "options": point.options})
    return rows


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def run(folder: Path, out: Path, quick: bool = False, limit: int | None = None, device: str = "auto",
        reference_csv: Path = REFERENCE_CSV, warm_ups: int = WARM_UPS) -> dict[str, Any]:
    """Measure every operating point on the images in ``folder``, write all outputs to ``out``, return the results."""
    if limit is None and quick:
        limit = QUICK_IMAGES
    images = load_images(folder, limit)
    points = all_points(quick=quick, device=device)
    started = time.perf_counter()
    metadata = {**run_metadata(resolve_device(device)), "folder": display_path(folder), "images": len(images),
                "image_sizes": sorted({f"{i.pixels.shape[1]}x{i.pixels.shape[0]}" for i in images}),
                "quick": quick, "limit": limit, "warm_ups": warm_ups}
    metadata["default_setting"] = default_setting(metadata["default_weights_id"])
    rows = measure_points(points, images, warm_ups)
    metadata["elapsed_s"] = round(time.perf_counter() - started, 1)
    results = {"metadata": metadata, "points": rows}
    results["comparison"] = comparison(results)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "rate_distortion.csv", rows)
    write_json(out / "rate_distortion.json", results)
    write_report(results, out, reference_csv)
    return results


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_FOLDER)
@click.option("--quick", is_flag=True, help=f"Development run: first {QUICK_IMAGES} images, every other setting.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images (sorted by name).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True)
@device_option
@threads_option
@click.option("--warm-ups", type=click.IntRange(min=0), default=WARM_UPS, show_default=True,
              help="Untimed round trips before timing each setting.")
@click.option("--reference", type=click.Path(path_type=Path), default=REFERENCE_CSV, show_default=True,
              help="CSV of the 2004 paper's JPEG / JPEG 2000 curves, plotted as context only.")
def main(folder: Path, quick: bool, limit: int | None, out: Path, device: str, threads: int | None,
         warm_ups: int, reference: Path) -> None:
    """Rate-distortion of fcz and JPEG / JPEG 2000 / WebP / AVIF (and, with the bench extra, JPEG XL and HEIC) on
    every image in FOLDER."""
    check_device(device)
    set_threads(threads)
    results = run(folder, out, quick, limit, device, reference, warm_ups)
    click.echo((out / "summary.md").read_text())
    click.echo(f"results in {out}/: rate_distortion.csv, rate_distortion.json, summary.md, "
               f"rd_psnr_bpp.png, rd_psnr_ratio.png ({len(results['points'])} points, "
               f"{results['metadata']['images']} images)")


if __name__ == "__main__":
    main()
