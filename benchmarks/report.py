"""Turn rate_distortion.json into the comparison (summary.md) and the plots.

The comparison, all measured from the results' points: fcz's default curve (default weights,
every setting) BD-rate against every other curve, each of its points against JPEG 2000's
curve at the same bpp, and whether it rises monotonically in bpp and PSNR.

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

from facecodec.train import bdrate
from benchmarks.common import DEFAULT_OUT, REFERENCE_CSV
from benchmarks.operating_points import curves, default_point, fcz_codec, label, setting_words

MARGIN_ANCHOR = "jpeg2000"  # the curve fcz's default curve must lie above (the quality issue's bar)


def settings_span(curve: list[dict[str, Any]]) -> str:
    """The settings a curve sweeps, for prose: "quality 1-8" or "bits 1-8"."""
    name = curve[0]["setting"].split("=")[0]
    values = [p["value"] for p in curve]
    return f"{name} {min(values):g}-{max(values):g}"


def compare(points: list[dict[str, Any]], default_weights_id: str, default: dict[str, Any]) -> list[dict[str, Any]]:
    """fcz's default curve and ``default`` point against every other curve (classical codecs, other weights)."""
    by_codec = curves(points)
    test_codec = fcz_codec(default_weights_id)
    fcz_rates = [p["bpp"] for p in by_codec[test_codec]]
    fcz_psnrs = [p["psnr_db"] for p in by_codec[test_codec]]
    rows = []
    for codec, group in by_codec.items():
        if codec == test_codec:
            continue
        rates, psnrs = [p["bpp"] for p in group], [p["psnr_db"] for p in group]
        bd = bdrate.bd_rate(rates, psnrs, fcz_rates, fcz_psnrs)
        psnr_there = bdrate.psnr_at_rate(rates, psnrs, default["bpp"])
        bpp_there = bdrate.rate_at_psnr(rates, psnrs, default["psnr_db"])
        rows.append({
            "codec": codec,
            "bd_rate_percent": bd.percent, "bd_rate_text": bd.text(), "psnr_overlap_db": bd.overlap,
            "codec_psnr_range_db": bd.anchor_psnr, "fcz_psnr_range_db": bd.test_psnr,
            "codec_bpp_range": bdrate.rate_range(rates, psnrs),
            "fcz_bpp_range": bdrate.rate_range(fcz_rates, fcz_psnrs),
            "codec_psnr_at_fcz_bpp": psnr_there, "codec_bpp_at_fcz_psnr": bpp_there,
        })
    return rows


def margins(curve: list[dict[str, Any]], anchor: list[dict[str, Any]]) -> dict[str, Any]:
    """Each point of ``curve`` against ``anchor``'s PSNR interpolated at the point's bpp.

    A point counts as above the anchor when its PSNR is higher than the anchor's there; points
    whose bpp lies outside the anchor's measured range can't be compared and are listed apart.
    """
    rates, psnrs = [p["bpp"] for p in anchor], [p["psnr_db"] for p in anchor]
    rows = []
    for point in sorted(curve, key=lambda p: p["value"]):
        there = bdrate.psnr_at_rate(rates, psnrs, point["bpp"])
        rows.append({"setting": point["setting"], "bpp": point["bpp"], "psnr_db": point["psnr_db"],
                     "anchor_psnr_db": there, "margin_db": None if there is None else point["psnr_db"] - there})
    compared = [r for r in rows if r["margin_db"] is not None]
    return {"anchor_bpp_range": bdrate.rate_range(rates, psnrs), "points": rows,
            "above": sum(r["margin_db"] > 0 for r in compared), "compared": len(compared),
            "outside_range": [r["setting"] for r in rows if r["margin_db"] is None]}


def monotonic(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether bpp and PSNR both rise with every step of the setting, and the steps where one does not."""
    ordered = sorted(curve, key=lambda p: p["value"])
    steps = list(zip(ordered, ordered[1:]))
    breaks = [{"from": a["setting"], "to": b["setting"], "bpp": [a["bpp"], b["bpp"]],
               "psnr_db": [a["psnr_db"], b["psnr_db"]]}
              for a, b in steps if not (b["bpp"] > a["bpp"] and b["psnr_db"] > a["psnr_db"])]
    return {"monotonic": not breaks, "bpp_increasing": all(b["bpp"] > a["bpp"] for a, b in steps),
            "psnr_increasing": all(b["psnr_db"] > a["psnr_db"] for a, b in steps), "breaks": breaks}


def comparison(results: dict[str, Any]) -> dict[str, Any]:
    """Everything summary.md states about fcz's default curve, measured from the results' points."""
    meta, points = results["metadata"], results["points"]
    default_id = meta["default_weights_id"]
    by_codec = curves(points)
    default_curve = by_codec[fcz_codec(default_id)]
    default = default_point(results)
    return {"default_weights_id": default_id, "default_setting": default["setting"],
            "default_curve_settings": settings_span(default_curve),
            "codecs": compare(points, default_id, default),
            "margins_anchor": MARGIN_ANCHOR, "margins": margins(default_curve, by_codec[MARGIN_ANCHOR]),
            "monotonic": monotonic(default_curve)}


def _range(r: tuple[float, float] | list[float], unit: str, digits: int = 2) -> str:
    return f"{r[0]:.{digits}f}–{r[1]:.{digits}f} {unit}"


def _table_row(row: dict[str, Any], default: dict[str, Any]) -> tuple[str, str | None]:
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
        missing.append(f"its PSNR at {default['bpp']:.3f} bpp")
    else:
        at_bpp = (f"{row['codec_psnr_at_fcz_bpp']:.2f} dB "
                  f"(fcz {default['psnr_db'] - row['codec_psnr_at_fcz_bpp']:+.2f} dB)")
    if row["codec_bpp_at_fcz_psnr"] is None:
        at_psnr = "no overlap"
        missing.append(f"its rate at {default['psnr_db']:.2f} dB")
    else:
        extra_bits = (default["bpp"] / row["codec_bpp_at_fcz_psnr"] - 1) * 100
        at_psnr = f"{row['codec_bpp_at_fcz_psnr']:.3f} bpp (fcz {extra_bits:+.0f}% bits)"
    note = None
    if missing:
        note = (f"{name}: no overlap for {', '.join(missing)}. {name} spans "
                f"{_range(row['codec_psnr_range_db'], 'dB')} and {_range(row['codec_bpp_range'], 'bpp', 3)}; "
                f"fcz spans {_range(row['fcz_psnr_range_db'], 'dB')} and {_range(row['fcz_bpp_range'], 'bpp', 3)}.")
    return f"| {name} | {bd} | {overlap} | {at_bpp} | {at_psnr} |", note


def _bd_rate_lines(found: dict[str, Any], default: dict[str, Any]) -> list[str]:
    """The BD-rate table of fcz's default curve against every other curve, and notes where curves don't overlap."""
    lines = [f"| codec | BD-rate of fcz vs codec | PSNR range compared | codec PSNR at {default['bpp']:.3f} bpp "
             f"| codec bpp at {default['psnr_db']:.2f} dB |",
             "| --- | --- | --- | --- | --- |"]
    notes = []
    for row in found["codecs"]:
        line, note = _table_row(row, default)
        lines.append(line)
        notes += [note] if note else []
    lines += [
        "",
        f"BD-rate: Bjontegaard delta rate of fcz's default curve ({found['default_curve_settings']}) against each "
        "codec's curve, PCHIP interpolation of log-rate over the PSNR range both reach; negative = fcz needs fewer "
        "bits for the same PSNR. Points that a cheaper point beats are left out of each curve. The last two columns "
        f"read each codec's curve (interpolated) at fcz's default operating point "
        f"({setting_words(found['default_setting'])}).",
    ]
    if notes:
        lines += ["", "Where curves don't overlap:", ""] + [f"- {note}" for note in notes]
    return lines


def _margin_lines(found: dict[str, Any]) -> list[str]:
    """fcz's default curve point by point against the anchor's interpolated PSNR, and the count above it."""
    anchor, m = label(found["margins_anchor"]), found["margins"]
    lines = [f"fcz's default curve against {anchor} ({anchor}'s PSNR interpolated at each fcz point's bpp):", "",
             f"| setting | bpp | fcz PSNR (dB) | {anchor} PSNR there (dB) | fcz - {anchor} (dB) |",
             "| --- | --- | --- | --- | --- |"]
    for r in m["points"]:
        there, margin = (("outside its range",) * 2 if r["margin_db"] is None
                         else (f"{r['anchor_psnr_db']:.2f}", f"{r['margin_db']:+.2f}"))
        lines.append(f"| {setting_words(r['setting'])} | {r['bpp']:.3f} | {r['psnr_db']:.2f} | {there} | {margin} |")
    outside = (f" ({len(m['outside_range'])} more lie outside {anchor}'s measured range, "
               f"{_range(m['anchor_bpp_range'], 'bpp', 3)}, and are not compared: "
               f"{', '.join(setting_words(s) for s in m['outside_range'])})" if m["outside_range"] else "")
    return lines + ["", f"**{m['above']} of {m['compared']}** fcz points lie above the {anchor} curve{outside}."]


def _monotonic_line(found: dict[str, Any]) -> str:
    m = found["monotonic"]
    if m["monotonic"]:
        return (f"fcz's default curve is monotonic: bpp and PSNR both rise with every step of "
                f"{found['default_curve_settings']}.")
    steps = "; ".join(f"{setting_words(b['from'])} -> {setting_words(b['to'])}: "
                      f"{b['bpp'][0]:.3f} -> {b['bpp'][1]:.3f} bpp, {b['psnr_db'][0]:.2f} -> {b['psnr_db'][1]:.2f} dB"
                      for b in m["breaks"])
    return (f"fcz's default curve is **not monotonic** (bpp rising: {'yes' if m['bpp_increasing'] else 'no'}, "
            f"PSNR rising: {'yes' if m['psnr_increasing'] else 'no'}): {steps}.")


def _fcz_points_lines(points: list[dict[str, Any]]) -> list[str]:
    lines = ["| weights | setting | bpp | ratio | PSNR (dB) | SSIM | encode ms | decode ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for codec, group in curves(points).items():
        if codec.startswith("fcz/"):
            for p in sorted(group, key=lambda p: p["value"]):
                lines.append(f"| {codec[4:]} | {setting_words(p['setting'])} | {p['bpp']:.3f} "
                             f"| {p['compression_ratio']:.1f} | {p['psnr_db']:.2f} | {p['ssim']:.3f} "
                             f"| {p['encode_ms']:.1f} | {p['decode_ms']:.1f} |")
    return lines


def summary_markdown(results: dict[str, Any]) -> str:
    """The README-ready comparison: conventions, fcz's default point, the BD-rate table, fcz's curve."""
    meta = results["metadata"]
    found = comparison(results)  # recomputed, so a re-run of this script picks up code changes
    default = default_point(results)
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
        f"fcz default (weights `{found['default_weights_id']}`, {setting_words(found['default_setting'])}): "
        f"**{default['bpp']:.3f} bpp** (ratio {default['compression_ratio']:.1f}:1), "
        f"**{default['psnr_db']:.2f} dB** PSNR, SSIM {default['ssim']:.3f}.",
        "",
        *_bd_rate_lines(found, default),
        "",
        *_margin_lines(found),
        "",
        _monotonic_line(found),
        "",
        "fcz operating points:",
        "",
        *_fcz_points_lines(results["points"]),
        "",
        "All points of all codecs: `rate_distortion.csv` beside this file; plots: "
        "`rd_psnr_bpp.png`, `rd_psnr_ratio.png`.",
    ]
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
