"""fcz on JPEG-sourced faces: coding the JPEG file (its lattice kept, facecodec.jpeg_lattice) against coding its
pixels, and against the classical codecs (JPEG XL and HEIC with the ``bench`` extra); every codec on the same
images in one run.

    python benchmarks/jpeg_sources.py [SET] [--limit N] [--out benchmarks/results]

SET: ``thumbnails`` (default: the web-thumbnail development set, benchmarks/web_thumbnails.py), ``faces-val``
(faces/val as saved: 200x200 JPEGs of quality 75) or a folder of JPEG files. The classical codecs and "fcz
(pixels)" get the decoded pixels, "fcz (file)" the file, as ``fcz encode face.jpg`` does; every decode is measured
against the decoded JPEG. Writes jpeg_sources_<set>.md and .json into --out: each curve's points and the BD-rate of
both fcz curves against every other curve (over the PSNR range both reach).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import time
from typing import Any, Callable

import click

from facecodec import zoo
from facecodec.train import bdrate

from benchmarks.common import DEFAULT_OUT, OperatingPoint, TestImage, file_image, load_images, run_metadata, write_json
from benchmarks.operating_points import avif, curves, fcz, jpeg2000, label, plugin_points, webp
from benchmarks.rate_distortion import measure_points
from benchmarks.report import margins
from benchmarks.web_thumbnails import FACES_VAL, thumbnails

DEFAULT_LIMITS = {"thumbnails": 200, "faces-val": 100}
# Down to where a face stops being recognisable (benchmarks/perceptual.py's bytes to keep identity), up past 50 dB.
AVIF_QUALITIES = [0, 10, 20, 40, 50, 60, 70, 80, 85, 90, 95]
JPEG2000_BPP = [0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.2, 1.8, 2.6, 3.6, 5.0]
WEBP_QUALITIES = [0, 10, 20, 40, 60, 75, 85, 90, 95, 100]
ABOVE_AVIF_UP_TO_DB = 45.0   # the quality issue's test: every fcz point at or above AVIF's curve up to 45 dB


def images(which: str, limit: int | None) -> list[TestImage]:
    if which == "thumbnails":
        return [file_image(name, data) for name, data in thumbnails(limit)]
    return load_images(FACES_VAL if which == "faces-val" else Path(which), limit)


def chosen_set(which: str, limit: int | None) -> tuple[str, list[TestImage]]:
    """A set as the command line names it -> (its name in the output files, its first ``limit`` images, by default
    ``DEFAULT_LIMITS``)."""
    return (which if which in DEFAULT_LIMITS else Path(which).name), images(which, limit or DEFAULT_LIMITS.get(which))


def set_options(command: Callable[..., None]) -> Callable[..., None]:
    """The set, ``--limit`` and ``--out``: what this benchmark and benchmarks/perceptual.py take."""
    command = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
                           show_default=True)(command)
    command = click.option("--limit", type=click.IntRange(min=1),
                           help="Only the first N images (default: 200 thumbnails, 100 faces/val).")(command)
    return click.argument("which", default="thumbnails", metavar="[thumbnails|faces-val|FOLDER]")(command)


def points() -> list[OperatingPoint]:
    weights_id = zoo.default_weights_id()
    sweep = [s for s in zoo.load_spec(weights_id).family.sweep() if s <= 90]
    found = [fcz(weights_id, quality=q) for q in sweep] + [fcz(weights_id, quality=q, from_file=True) for q in sweep]
    found += [avif(q) for q in AVIF_QUALITIES] + [jpeg2000(b) for b in JPEG2000_BPP] + [webp(q) for q in WEBP_QUALITIES]
    return found + plugin_points()


def bd_rates(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """For each fcz curve: the BD-rate (%) against every other curve."""
    grouped = curves(rows)
    out: dict[str, dict[str, float | None]] = {}
    for name, curve in grouped.items():
        if not name.startswith("fcz"):
            continue
        out[name] = {}
        for anchor, anchor_curve in grouped.items():
            if anchor != name:
                result = bdrate.bd_rate([p["bpp"] for p in anchor_curve], [p["psnr_db"] for p in anchor_curve],
                                        [p["bpp"] for p in curve], [p["psnr_db"] for p in curve])
                out[name][anchor] = result.percent
    return out


def above_avif(rows: list[dict[str, Any]], up_to_db: float = ABOVE_AVIF_UP_TO_DB) -> dict[str, Any]:
    """For each fcz curve, its points up to ``up_to_db`` against AVIF's curve at their bpp (benchmarks.report's
    margins): how many lie above it, of those AVIF's measured range reaches."""
    grouped = curves(rows)
    avif_curve = grouped.get("avif-444", [])
    out = {}
    for name, curve in grouped.items():
        if name.startswith("fcz") and avif_curve:
            found = margins([p for p in curve if p["psnr_db"] <= up_to_db], avif_curve)
            out[name] = {"above": found["above"], "compared": found["compared"],
                         "least_margin_db": min((r["margin_db"] for r in found["points"] if r["margin_db"] is not None),
                                                default=None)}
    return out


def curve_label(codec: str) -> str:
    return codec if codec.startswith("fcz") else label(codec)


def markdown(results: dict[str, Any]) -> str:
    meta, rows = results["metadata"], results["points"]
    lines = [f"# fcz on JPEG-sourced faces: {meta['set']}", "",
             f"{meta['images']} images ({', '.join(meta['image_sizes'][:4])}{', ...' if len(meta['image_sizes']) > 4 else ''}), "
             f"{meta['date']}, commit {meta['git_commit']}. PSNR against the decoded JPEG; bpp from the real files. "
             f"\"fcz (file)\" encodes the JPEG file (its JPEG source block), \"fcz\" its pixels. Made by "
             f"`python benchmarks/jpeg_sources.py {meta['set_argument']} --limit {meta['images']}`.", "",
             "## BD-rate (negative: fcz needs fewer bits for the same PSNR)", "",
             "| fcz curve | " + " | ".join(curve_label(a) for a in next(iter(results["bd_rate"].values()))) + " |",
             "| --- |" + " ---: |" * len(next(iter(results["bd_rate"].values())))]
    for name, against in results["bd_rate"].items():
        lines.append(f"| {name} | " + " | ".join("n/a" if v is None else f"{v:+.1f} %" for v in against.values()) + " |")
    lines += ["", f"Points up to {ABOVE_AVIF_UP_TO_DB:g} dB above AVIF 4:4:4's curve at their bpp (where AVIF's "
                  f"sweep reaches): " + "; ".join(f"{name} {v['above']} of {v['compared']} (least margin "
                                                  f"{v['least_margin_db']:+.2f} dB)" if v["least_margin_db"] is not None
                                                  else f"{name}: none comparable"
                                                  for name, v in results["above_avif"].items())]
    lines += ["", "## Points", "", "| codec | setting | bpp | PSNR dB | encode ms | decode ms |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {curve_label(row['codec'])} | {row['setting']} | {row['bpp']:.3f} | {row['psnr_db']:.2f} | "
                     f"{row['encode_ms']:.1f} | {row['decode_ms']:.1f} |")
    return "\n".join(lines) + "\n"


@click.command()
@set_options
def main(which: str, limit: int | None, out: Path) -> None:
    """fcz from the JPEG file, fcz from its pixels, AVIF, JPEG 2000, WebP, JPEG XL and HEIC on JPEG-sourced faces."""
    name, test_images = chosen_set(which, limit)
    started = time.perf_counter()
    rows = measure_points(points(), test_images, warm_ups=1)
    meta = {**run_metadata("cpu"), "set": name, "set_argument": which, "images": len(test_images),
            "image_sizes": sorted({f"{i.pixels.shape[1]}x{i.pixels.shape[0]}" for i in test_images}),
            "elapsed_s": round(time.perf_counter() - started, 1)}
    results = {"metadata": meta, "points": rows, "bd_rate": bd_rates(rows), "above_avif": above_avif(rows)}
    publish(out / f"jpeg_sources_{name}", results, markdown(results))


def publish(stem: Path, results: dict[str, Any], report: str) -> None:
    """``stem``.json and ``stem``.md written (the folder made), and the report shown."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_json(stem.parent / f"{stem.name}.json", results)
    (stem.parent / f"{stem.name}.md").write_text(report)
    click.echo(report)


if __name__ == "__main__":
    main()
