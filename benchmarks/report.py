"""Turn rate_distortion.json into the comparison table (summary.md) and the plots.

``python benchmarks/report.py [RESULTS_JSON]`` rebuilds both from saved results
without re-measuring (e.g. after changing the table layout or the reference CSV).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import json
from typing import Any

import click

from benchmarks import bdrate
from benchmarks.common import DEFAULT_OUT, REFERENCE_CSV
from benchmarks.operating_points import fcz_codec, label

DEFAULT_BITS_SETTING = "bits=6"


def curves(points: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Points grouped by codec, each group sorted by rate, in first-seen codec order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        grouped.setdefault(point["codec"], []).append(point)
    return {codec: sorted(group, key=lambda p: p["bpp"]) for codec, group in grouped.items()}


def default_point(points: list[dict[str, Any]], default_weights_id: str) -> dict[str, Any]:
    """fcz's default operating point: the default weights at 6 bits."""
    for point in points:
        if point["codec"] == fcz_codec(default_weights_id) and point["setting"] == DEFAULT_BITS_SETTING:
            return point
    raise ValueError(f"results hold no {DEFAULT_BITS_SETTING} point for default weights {default_weights_id}")


def compare(points: list[dict[str, Any]], default_weights_id: str) -> list[dict[str, Any]]:
    """fcz's default curve and 6-bit point against every other curve (classical codecs, other weights)."""
    by_codec = curves(points)
    test_codec = fcz_codec(default_weights_id)
    fcz_rates = [p["bpp"] for p in by_codec[test_codec]]
    fcz_psnrs = [p["psnr_db"] for p in by_codec[test_codec]]
    fcz6 = default_point(points, default_weights_id)
    rows = []
    for codec, group in by_codec.items():
        if codec == test_codec:
            continue
        rates, psnrs = [p["bpp"] for p in group], [p["psnr_db"] for p in group]
        bd = bdrate.bd_rate(rates, psnrs, fcz_rates, fcz_psnrs)
        psnr_there = bdrate.psnr_at_rate(rates, psnrs, fcz6["bpp"])
        bpp_there = bdrate.rate_at_psnr(rates, psnrs, fcz6["psnr_db"])
        rows.append({
            "codec": codec,
            "bd_rate_percent": bd.percent, "bd_rate_text": bd.text(), "psnr_overlap_db": bd.overlap,
            "codec_psnr_range_db": bd.anchor_psnr, "fcz_psnr_range_db": bd.test_psnr,
            "codec_bpp_range": bdrate.rate_range(rates, psnrs),
            "fcz_bpp_range": bdrate.rate_range(fcz_rates, fcz_psnrs),
            "codec_psnr_at_fcz_bpp": psnr_there, "codec_bpp_at_fcz_psnr": bpp_there,
        })
    return rows


def _range(r: tuple[float, float] | list[float], unit: str, digits: int = 2) -> str:
    return f"{r[0]:.{digits}f}–{r[1]:.{digits}f} {unit}"


def _table_row(row: dict[str, Any], fcz6: dict[str, Any]) -> tuple[str, str | None]:
    """One codec's table line, and a note giving both curves' ranges when anything could not be compared."""
    name = label(row["codec"])
    missing = []
    if row["bd_rate_percent"] is None:
        bd, overlap = "no overlap", "none"
        missing.append("BD-rate")
    else:
        bd, overlap = f"{row['bd_rate_percent']:+.1f}%", _range(row["psnr_overlap_db"], "dB")
    if row["codec_psnr_at_fcz_bpp"] is None:
        at_bpp = "no overlap"
        missing.append(f"its PSNR at {fcz6['bpp']:.3f} bpp")
    else:
        at_bpp = f"{row['codec_psnr_at_fcz_bpp']:.2f} dB (fcz {fcz6['psnr_db'] - row['codec_psnr_at_fcz_bpp']:+.2f} dB)"
    if row["codec_bpp_at_fcz_psnr"] is None:
        at_psnr = "no overlap"
        missing.append(f"its rate at {fcz6['psnr_db']:.2f} dB")
    else:
        extra_bits = (fcz6["bpp"] / row["codec_bpp_at_fcz_psnr"] - 1) * 100
        at_psnr = f"{row['codec_bpp_at_fcz_psnr']:.3f} bpp (fcz {extra_bits:+.0f}% bits)"
    note = None
    if missing:
        note = (f"{name}: no overlap for {', '.join(missing)}. {name} spans "
                f"{_range(row['codec_psnr_range_db'], 'dB')} and {_range(row['codec_bpp_range'], 'bpp', 3)}; "
                f"fcz spans {_range(row['fcz_psnr_range_db'], 'dB')} and {_range(row['fcz_bpp_range'], 'bpp', 3)}.")
    return f"| {name} | {bd} | {overlap} | {at_bpp} | {at_psnr} |", note


def summary_markdown(results: dict[str, Any]) -> str:
    """The README-ready comparison: conventions, fcz's default point, the BD-rate table, fcz's curve."""
    meta, points = results["metadata"], results["points"]
    default_id = meta["default_weights_id"]
    fcz6 = default_point(points, default_id)
    lines = []
    if meta.get("quick"):
        lines += [f"> **Quick development run ({meta['images']} images, fewer settings): not for publication.**", ""]
    lines += [
        f"Measured on {meta['images']} images ({', '.join(meta['image_sizes'])}) from `{meta['folder']}`, "
        f"{meta['date'][:10]}, facecodec {meta['versions']['facecodec']}, Pillow {meta['versions']['Pillow']}, "
        f"torch {meta['versions']['torch']} ({meta['torch_threads']} threads), commit `{meta.get('git_commit')}`. "
        f"Every codec on the same images in one run; bpp = 8 x real file bytes / pixels (headers included), "
        f"compression ratio = 24 / mean bpp, PSNR on 8-bit RGB averaged per image.",
        "",
        f"fcz default (weights `{default_id}`, 6 bits): **{fcz6['bpp']:.3f} bpp** "
        f"(ratio {fcz6['compression_ratio']:.1f}:1), **{fcz6['psnr_db']:.2f} dB** PSNR, SSIM {fcz6['ssim']:.3f}.",
        "",
        f"| codec | BD-rate of fcz vs codec | PSNR range compared | codec PSNR at {fcz6['bpp']:.3f} bpp "
        f"| codec bpp at {fcz6['psnr_db']:.2f} dB |",
        "| --- | --- | --- | --- | --- |",
    ]
    notes = []
    for row in compare(points, default_id):  # recomputed, so a re-run of this script picks up code changes
        line, note = _table_row(row, fcz6)
        lines.append(line)
        notes += [note] if note else []
    lines += [
        "",
        "BD-rate: Bjontegaard delta rate of fcz's default curve (bits 1-8) against each codec's curve, PCHIP "
        "interpolation of log-rate over the PSNR range both reach; negative = fcz needs fewer bits for the same "
        "PSNR. Points that a cheaper point beats are left out of each curve. The last two columns read each "
        "codec's curve (interpolated) at fcz's 6-bit operating point.",
    ]
    if notes:
        lines += ["", "Where curves don't overlap:", ""] + [f"- {note}" for note in notes]
    lines += ["", "fcz operating points:", "",
              "| weights | bits | bpp | ratio | PSNR (dB) | SSIM | encode ms | decode ms |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for codec, group in curves(points).items():
        if codec.startswith("fcz/"):
            for p in sorted(group, key=lambda p: p["value"]):
                lines.append(f"| {codec[4:]} | {p['value']:g} | {p['bpp']:.3f} | {p['compression_ratio']:.1f} "
                             f"| {p['psnr_db']:.2f} | {p['ssim']:.3f} | {p['encode_ms']:.1f} | {p['decode_ms']:.1f} |")
    lines += ["", "All points of all codecs: `rate_distortion.csv` beside this file; plots: "
              "`rd_psnr_bpp.png`, `rd_psnr_ratio.png`."]
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], out: Path, reference_csv: Path = REFERENCE_CSV) -> list[Path]:
    """Write summary.md and the two plots into ``out``; returns the paths written."""
    from benchmarks.plots import plot_rate_distortion

    summary = out / "summary.md"
    summary.write_text(summary_markdown(results))
    return [summary, *plot_rate_distortion(results, out, reference_csv)]


@click.command()
@click.argument("results_json", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default=DEFAULT_OUT / "rate_distortion.json")
@click.option("--reference", type=click.Path(path_type=Path), default=REFERENCE_CSV, show_default=True,
              help="CSV of the 2004 paper's JPEG / JPEG 2000 curves (context only).")
def main(results_json: Path, reference: Path) -> None:
    """Rebuild summary.md and the plots beside RESULTS_JSON."""
    results = json.loads(results_json.read_text())
    for path in write_report(results, results_json.parent, reference):
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
