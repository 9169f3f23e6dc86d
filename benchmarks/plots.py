"""Rate-distortion charts: PSNR against bpp, and PSNR against compression ratio with the 2004 reference curves."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on the machines this runs on
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from benchmarks.operating_points import curves, default_point, label, setting_words  # noqa: E402

# The seed project's reported best model (see ../shared/reference/README.md): other images, other setup.
SEED_POINT = {"compression_ratio": 10.66, "psnr_db": 43.4}
SEED_LABEL = "seed report: 43.4 dB at 10.66:1 (VoxCeleb2 224x224, other images)"
COLOURS = {"jpeg-420": "tab:blue", "jpeg-444": "tab:cyan", "jpeg2000": "tab:green",
           "webp": "tab:orange", "avif-444": "tab:purple"}
FCZ_COLOURS = ["tab:red", "tab:brown", "tab:pink", "tab:olive"]


def read_reference(path: Path) -> dict[str, list[tuple[float, float]]]:
    """codec -> [(compression ratio, PSNR dB)] from the 2004 paper's CSV; empty (with a warning) if missing."""
    if not path.is_file():
        warnings.warn(f"reference curves {path} not found: plotting without them", stacklevel=2)
        return {}
    reference: dict[str, list[tuple[float, float]]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            reference.setdefault(row["codec"], []).append((float(row["compression_ratio"]), float(row["psnr_db"])))
    return {codec: sorted(points) for codec, points in reference.items()}


def _colour(codec: str, fcz_index: dict[str, int]) -> str:
    if codec.startswith("fcz/"):
        return FCZ_COLOURS[fcz_index.setdefault(codec, len(fcz_index)) % len(FCZ_COLOURS)]
    return COLOURS.get(codec, "black")


def _draw_measured(ax: plt.Axes, results: dict[str, Any], x_key: str) -> None:
    fcz_index: dict[str, int] = {}
    for codec, group in curves(results["points"]).items():
        is_fcz = codec.startswith("fcz/")
        ax.plot([p[x_key] for p in group], [p["psnr_db"] for p in group], marker="o" if is_fcz else ".",
                linewidth=2.2 if is_fcz else 1.3, color=_colour(codec, fcz_index), label=label(codec), zorder=3)
    default = default_point(results)
    ax.plot(default[x_key], default["psnr_db"], marker="*", markersize=16, color="tab:red", markeredgecolor="black",
            linestyle="none", zorder=4, label=f"fcz default ({setting_words(default['setting'])}): "
                                              f"{default['bpp']:.2f} bpp, {default['psnr_db']:.1f} dB")


def _finish(ax: plt.Axes, results: dict[str, Any], xlabel: str, path: Path) -> Path:
    meta = results["metadata"]
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PSNR (dB, RGB, mean over images)")
    quick = " — QUICK RUN" if meta.get("quick") else ""
    ax.set_title(f"{meta['images']} faces from {Path(meta['folder']).name}, {meta['date'][:10]}{quick}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # outside: no hidden points
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=130)
    plt.close(ax.figure)
    return path


def plot_rate_distortion(results: dict[str, Any], out: Path, reference_csv: Path) -> list[Path]:
    """Write rd_psnr_bpp.png and rd_psnr_ratio.png into ``out``."""
    fig, ax = plt.subplots(figsize=(11.5, 5.5))
    _draw_measured(ax, results, "bpp")
    by_bpp = _finish(ax, results, "bits per pixel (real file size, log scale)", out / "rd_psnr_bpp.png")

    fig, ax = plt.subplots(figsize=(11.5, 5.5))
    _draw_measured(ax, results, "compression_ratio")
    # Context only, never a baseline: different images and setups, hence grey and dashed.
    for codec, style in (("jpeg", "--"), ("jpeg2000", ":")):
        ref = read_reference(reference_csv).get(codec)
        if ref:
            name = "JPEG" if codec == "jpeg" else "JPEG 2000"
            ax.plot(*zip(*ref), linestyle=style, color="grey", linewidth=1.5,
                    label=f"{name}, 2004 paper (other images)")
    ax.plot(SEED_POINT["compression_ratio"], SEED_POINT["psnr_db"], marker="D", color="grey", linestyle="none",
            markersize=7, label=SEED_LABEL)
    by_ratio = _finish(ax, results, "compression ratio = 24 / mean bpp (log scale)", out / "rd_psnr_ratio.png")
    return [by_bpp, by_ratio]


METRIC_COLOURS = {**COLOURS, "jxl": "tab:gray", "heic-444": "tab:olive"}


def metric_panels(curves_by_codec: dict[str, list[dict[str, Any]]], metrics: dict[str, str], title: str,
                  path: Path) -> Path:
    """One panel per metric (its key in each point -> its axis label) against bpp, every codec's curve in each."""
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4), constrained_layout=True)
    for axis, (key, name) in zip(axes, metrics.items()):
        for codec, points in curves_by_codec.items():
            style = {"color": METRIC_COLOURS.get(codec, "tab:red" if codec.endswith("(file)") else "tab:brown"),
                     "linewidth": 2.2 if codec.startswith("fcz") else 1.2}
            axis.plot([p["bpp"] for p in points], [p[key] for p in points], marker=".", label=_metric_label(codec),
                      **style)
        axis.set_xscale("log")
        axis.set_xlabel("bits per pixel")
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _metric_label(codec: str) -> str:
    if codec.startswith("fcz"):
        return f"fcz ({'JPEG file' if codec.endswith('(file)') else 'pixels'})"
    return label(codec)
