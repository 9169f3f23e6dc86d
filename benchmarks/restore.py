"""Face restoration (`fcz restore`): per task, the damaged input, the best classical fix and the network.

    python benchmarks/restore.py [FOLDER] [--images 100] [--val-images 16] [--threads 1] [--out benchmarks/results]
    python benchmarks/restore.py --speed-only [--speed-threads 2]     # re-time only, into the saved results

Every test face (default: the first ``--images`` of ``../shared/data/lfw-test``,
by name) is damaged as facecodec.damage does at the benchmark's settings (seed =
the face's index), then scored, PSNR (dB, 8-bit RGB) and SSIM against the clean
face, three ways:

  * input: the damaged face as it is (superres: its nearest-neighbour upscale);
  * classical: the best classical fix of the task, its method and parameters
    chosen on ``--val-images`` UTKFace validation faces (never on the test set):
    denoise: NL-means or TV (Chambolle); inpaint: biharmonic inpainting;
    deblur: Richardson-Lucy with the true PSF, or unsharp masking; depixelate
    and superres: bicubic upscaling (depixelate: of one pixel per cell); dejpeg:
    the input itself or a TV denoiser; colorize: the greyscale face as RGB;
  * network: ``facecodec.restore``, which gives each task its most specialised installed network.

Inpainting is scored inside the holes (``psnr_db_holes``) as the target asks, and
over the whole face; colorize skips the faces that are greyscale already (their PSNR
would be infinite). Superresolution crops each face to a multiple of the scale
first (150 -> 148 for x4, 144 for x8). ``restore.json`` holds everything with
the run's metadata, ``restore.md`` the table with each task's target margin, and
``restore_mosaic_TASK.png`` three faces per task: clean, damaged, classical,
network, network error (``clip(8(x-y)/255 + 0.5, 0, 1)``). Both also give the median time of
``facecodec.restore`` on a 150x150 and a 512x512 image at ``--speed-threads`` torch
threads (the issue's targets: 0.3 s and 3 s on the 2-core CPU) and the weights' size.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import click
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.filters import gaussian  # noqa: E402
from skimage.restoration import (denoise_nl_means, denoise_tv_chambolle, inpaint_biharmonic,  # noqa: E402
                                 richardson_lucy)

from facecodec import restoration, zoo  # noqa: E402
from facecodec.damage import (BENCHMARK_BLUR_SIGMA, BENCHMARK_NOISE_SIGMA, BENCHMARK_PIXEL_CELL, DAMAGE,  # noqa: E402
                              missing_blocks, upscale_bicubic)
from facecodec.metrics import psnr  # noqa: E402

from benchmarks.common import (DEFAULT_FOLDER, DEFAULT_OUT, REPO_ROOT, TestImage, display_path, load_images,  # noqa: E402
                               progress, run_metadata, set_threads, ssim, threads_option, write_json)
from benchmarks.mosaic import error_image, pick_faces  # noqa: E402

VAL_FOLDER = REPO_ROOT.parent / "shared" / "data" / "faces" / "val"
# The done-when: the network's PSNR margin over the best classical fix, per condition (dB).
TARGET_MARGIN_DB = {"denoise": 0.5, "inpaint": 1.0, "deblur": 1.0, "depixelate": 1.0, "dejpeg": 1.0,
                    "superres4": 1.0, "superres8": 1.0, "colorize": 1.0}
TASK_OF = {"superres4": ("superres", 4), "superres8": ("superres", 8)}  # other conditions are their own task


def _float(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) / 255


def _uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values * 255), 0, 255).astype(np.uint8)


def _gaussian_psf(sigma: float) -> np.ndarray:
    radius = int(np.ceil(4 * sigma))  # skimage.filters.gaussian's truncate=4, as the blur was made
    axis = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    psf = np.outer(axis, axis)
    return psf / psf.sum()


# --- classical fixes: name -> (parameter grid, fix(damaged, mask, parameter) -> uint8) --------------------------

@dataclass(frozen=True)
class Fix:
    method: str
    grid: tuple[Any, ...]
    apply: Callable[[np.ndarray, np.ndarray | None, Any], np.ndarray]


def _nl_means(damaged, mask, h):
    return _uint8(denoise_nl_means(_float(damaged), h=h, sigma=BENCHMARK_NOISE_SIGMA, patch_size=5,
                                   patch_distance=6, fast_mode=True, channel_axis=-1))


def _tv(damaged, mask, weight):
    return _uint8(denoise_tv_chambolle(_float(damaged), weight=weight, channel_axis=-1))


def _richardson_lucy(damaged, mask, iterations):
    psf = _gaussian_psf(BENCHMARK_BLUR_SIGMA)
    radius = psf.shape[0] // 2
    # Reflected borders, as the blur had: skimage convolves with zeros outside, which darkens the edges.
    image = np.pad(_float(damaged), ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    sharp = np.stack([richardson_lucy(image[..., c], psf, num_iter=iterations) for c in range(3)], -1)
    return _uint8(sharp[radius:-radius, radius:-radius])


def _unsharp(damaged, mask, radius_amount):
    # x + amount (x - blur(x)), written out: scikit-image 0.26's unsharp_mask returned NaN on float RGB faces here.
    radius, amount = radius_amount
    image = _float(damaged)
    return _uint8(image + amount * (image - gaussian(image, sigma=radius, channel_axis=-1, mode="reflect")))


def _biharmonic(damaged, mask, _):
    return _uint8(inpaint_biharmonic(_float(damaged), mask, channel_axis=-1))


def _bicubic_cells(damaged, mask, _):
    cell = BENCHMARK_PIXEL_CELL
    return upscale_bicubic(np.ascontiguousarray(damaged[::cell, ::cell]), damaged.shape[1], damaged.shape[0])


def _as_is(damaged, mask, _):
    return damaged


SIGMA = BENCHMARK_NOISE_SIGMA
CLASSICAL: dict[str, list[Fix]] = {
    "denoise": [Fix("NL-means (h)", tuple(round(f * SIGMA, 4) for f in (0.6, 0.8, 1.0, 1.2)), _nl_means),
                Fix("TV Chambolle (weight)", (0.04, 0.06, 0.08, 0.11, 0.15), _tv)],
    "inpaint": [Fix("biharmonic", (None,), _biharmonic)],
    "deblur": [Fix("Richardson-Lucy, true PSF (iterations)", (10, 20, 40, 80), _richardson_lucy),
               Fix("unsharp mask (radius, amount)", ((1, 1.0), (2, 1.0), (2, 2.0), (3, 1.5), (4, 2.0)), _unsharp)],
    "depixelate": [Fix("bicubic of the cells", (None,), _bicubic_cells)],
    "dejpeg": [Fix("the JPEG as is", (None,), _as_is),
               Fix("TV Chambolle (weight)", (0.01, 0.02, 0.03, 0.05), _tv)],
    "superres4": [Fix("bicubic", (None,), _as_is)],  # network_input is the bicubic upscale already
    "superres8": [Fix("bicubic", (None,), _as_is)],
    "colorize": [Fix("the greyscale as RGB", (None,), _as_is)],
}


# --- one face ---------------------------------------------------------------------------------------------------

@dataclass
class Case:
    clean: np.ndarray
    damaged: np.ndarray         # as a user would hand it to fcz restore (superres: the small image)
    shown: np.ndarray           # the damaged face at the clean face's size (superres: nearest neighbour)
    network_input: np.ndarray   # what the classical fix starts from (superres: bicubic-upscaled)
    mask: np.ndarray | None     # inpaint: the holes


def make_case(pixels: np.ndarray, condition: str, seed: int) -> Case:
    scale = TASK_OF.get(condition, (None, 1))[1]
    height, width = (pixels.shape[0] // scale) * scale, (pixels.shape[1] // scale) * scale
    clean = np.ascontiguousarray(pixels[:height, :width])
    mask = missing_blocks(clean, seed=seed)[1] if condition == "inpaint" else None
    damaged = DAMAGE[condition](clean, seed)
    if scale == 1:
        return Case(clean, damaged, damaged, damaged, mask)
    shown = np.repeat(np.repeat(damaged, scale, 0), scale, 1)
    return Case(clean, damaged, shown, upscale_bicubic(damaged, width, height), mask)


def score(case: Case, restored: np.ndarray) -> dict[str, float]:
    result = {"psnr_db": psnr(case.clean, restored), "ssim": ssim(case.clean, restored)}
    if case.mask is not None:
        inside = case.mask
        mse = np.mean((case.clean[inside].astype(np.float64) - restored[inside]) ** 2)
        result["psnr_db_holes"] = float(10 * np.log10(255.0**2 / max(mse, 1e-10)))
    return result


def usable(condition: str, pixels: np.ndarray) -> bool:
    """Whether a face can score ``condition``: colorize skips faces that are greyscale already (PSNR infinite)."""
    return condition != "colorize" or not (np.array_equal(pixels[..., 0], pixels[..., 1])
                                           and np.array_equal(pixels[..., 1], pixels[..., 2]))


def key_metric(condition: str) -> str:
    return "psnr_db_holes" if condition == "inpaint" else "psnr_db"


def network(case: Case, condition: str) -> np.ndarray:
    task, scale = TASK_OF.get(condition, (condition, None))
    return np.asarray(restoration.restore(case.damaged, task=task, scale=scale).convert("RGB"))


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.mean([r[key] for r in rows])), 4 if key == "ssim" else 2) for key in rows[0]}


# --- tuning on validation faces ------------------------------------------------------------------------------------

def tune(condition: str, val: list[TestImage]) -> tuple[Fix, Any, list[dict]]:
    """The (fix, parameter) with the best mean key metric on ``val``, and every candidate's score."""
    cases = [make_case(image.pixels, condition, seed=10_000 + i) for i, image in enumerate(val)
             if usable(condition, image.pixels)]
    metric = key_metric(condition)
    tried = []
    for fix in CLASSICAL[condition]:
        for parameter in fix.grid:
            value = float(np.mean([score(c, fix.apply(c.network_input, c.mask, parameter))[metric] for c in cases]))
            tried.append({"method": fix.method, "parameter": parameter, f"val_{metric}": round(value, 3),
                          "fix": fix})
    best = max(tried, key=lambda t: t[f"val_{metric}"])
    return best["fix"], best["parameter"], [{k: v for k, v in t.items() if k != "fix"} for t in tried]


# --- the run ----------------------------------------------------------------------------------------------------

def make_mosaic(condition: str, faces: list[tuple[Case, np.ndarray, np.ndarray]], method: str, path: Path) -> None:
    columns = 5
    fig, axes = plt.subplots(len(faces), columns, figsize=(columns * 1.9, len(faces) * 2.2), squeeze=False)
    metric = key_metric(condition)
    for row, (case, classical_fix, restored) in zip(axes, faces):
        tiles = [(case.clean, "clean"),
                 (case.shown, f"damaged\n{score(case, case.shown)[metric]:.1f} dB"),
                 (classical_fix, f"{method.split(' (')[0]}\n{score(case, classical_fix)[metric]:.1f} dB"),
                 (restored, f"network\n{score(case, restored)[metric]:.1f} dB"),
                 (error_image(case.clean, restored), "network error (x8)")]
        for ax, (tile, title) in zip(row, tiles):
            ax.imshow(tile, interpolation="nearest")
            ax.set_title(title, fontsize=7.5)
            ax.set_axis_off()
    fig.suptitle(f"fcz restore: {condition} ({'PSNR inside the holes' if metric == 'psnr_db_holes' else 'PSNR'})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


SPEED_TARGETS_S = {150: 0.3, 512: 3.0}  # the issue's: seconds per face on this 2-core CPU
SPEED_TASKS = ("denoise", "inpaint")


def speed(threads: int, repeats: int = 5) -> dict[str, dict[str, float]]:
    """Median seconds of ``facecodec.restore`` on astronaut crops of 150 and 512 px, at ``threads``, per timed task.

    Every task runs the same network over the same output size; inpaint also fills its holes
    (biharmonic) first, so those two bound the rest.
    """
    import torch
    from skimage.data import astronaut

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = {}
        for side, target in SPEED_TARGETS_S.items():
            for task in SPEED_TASKS:
                image = DAMAGE[task](astronaut()[:side, :side], 0)
                restoration.restore(image, task=task)  # warm-up: weights, kernel selection
                times = []
                for _ in range(repeats):
                    begun = time.perf_counter()
                    restoration.restore(image, task=task)
                    times.append(time.perf_counter() - begun)
                median = float(np.median(times))
                result[f"{task} {side}x{side}"] = {"seconds": round(median, 3), "target_s": target,
                                                   "met": median <= target}
        return result
    finally:
        torch.set_num_threads(before)


def table(rows: list[dict]) -> str:
    lines = ["| task | faces | metric | damaged input | best classical fix | classical | network | weights | margin "
             "| target | met |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        metric = key_metric(r["condition"])
        lines.append(f"| {r['condition']} | {r['images']} | {'PSNR in holes' if metric == 'psnr_db_holes' else 'PSNR'} "
                     f"(SSIM) | {r['input'][metric]:.2f} ({r['input']['ssim']:.3f}) | {r['classical']['method']}"
                     f"{'' if r['classical']['parameter'] is None else ' ' + str(r['classical']['parameter'])} | "
                     f"{r['classical'][metric]:.2f} ({r['classical']['ssim']:.3f}) | "
                     f"{r['network'][metric]:.2f} ({r['network']['ssim']:.3f}) | {r['network']['weights_id']} | "
                     f"{r['margin_db']:+.2f} dB | "
                     f">= {r['target_margin_db']:.1f} dB | {'yes' if r['met'] else 'no'} |")
    return "\n".join(lines)


def write_report(out: Path, payload: dict) -> None:
    """restore.json and restore.md from one run's payload."""
    write_json(out / "restore.json", payload)
    meta, timings = payload["meta"], payload["speed"]
    times = ", ".join(f"{size} {t['seconds']:.3f} s (target {t['target_s']} s)" for size, t in timings.items()
                      if size != "threads")
    (out / "restore.md").write_text(
        f"# fcz restore on lfw-test: {meta['test_images']}\n\n"
        f"Weights: each task's most specialised of {', '.join(meta['restore_weights_ids'])}; classical methods and parameters chosen on {meta['val_images']} "
        f"UTKFace validation faces; written by `python benchmarks/restore.py`.\n\n{table(payload['results'])}\n\n"
        f"Restore time (median of 5, {timings['threads']} torch threads): {times}; weights "
        f"{payload['weights_mb']:.1f} MB for all restore weights together (target: <= 30 MB).\n")


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_FOLDER)
@click.option("--images", type=click.IntRange(min=1), default=100, show_default=True,
              help="The first N test faces by name (NL-means and biharmonic inpainting make all 500 slow).")
@click.option("--val-images", type=click.IntRange(min=1), default=16, show_default=True,
              help="UTKFace validation faces that choose each classical fix's method and parameters.")
@click.option("--conditions", default=",".join(DAMAGE), show_default=True, help="Comma-separated subset.")
@click.option("--mosaic-faces", type=click.IntRange(1, 8), default=3, show_default=True)
@click.option("--speed-threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="torch threads for the 150x150 and 512x512 timings.")
@click.option("--speed-only", is_flag=True,
              help="Only re-time restoration (say, on an idle machine) into an existing restore.json and restore.md.")
@threads_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True)
def main(folder: Path, images: int, val_images: int, conditions: str, mosaic_faces: int, speed_threads: int,
         speed_only: bool, threads: int | None, out: Path) -> None:
    """Write restore.json, restore.md and restore_mosaic_TASK.png: restoration vs classical fixes on FOLDER."""
    set_threads(threads)
    if speed_only:
        payload = json.loads((out / "restore.json").read_text())
        payload["speed"] = {"threads": speed_threads, **speed(speed_threads)}
        write_report(out, payload)
        click.echo(json.dumps(payload["speed"]))
        return
    test, val = load_images(folder, images), load_images(VAL_FOLDER, val_images)
    shown = {face.name for face in pick_faces(test, mosaic_faces)}
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for condition in conditions.split(","):
        started = time.perf_counter()
        fix, parameter, tried = tune(condition, val)
        scores: dict[str, list] = {"input": [], "classical": [], "network": []}
        network_seconds, mosaic = [], []
        with progress(test, label=condition) as bar:
            for i, face in enumerate(bar):
                if not usable(condition, face.pixels):
                    continue
                case = make_case(face.pixels, condition, seed=i)
                classical_fix = fix.apply(case.network_input, case.mask, parameter)
                begun = time.perf_counter()
                restored = network(case, condition)
                network_seconds.append(time.perf_counter() - begun)
                for name, result in (("input", case.shown), ("classical", classical_fix), ("network", restored)):
                    scores[name].append(score(case, result))
                if face.name in shown:
                    mosaic.append((case, classical_fix, restored))
        make_mosaic(condition, mosaic, fix.method, out / f"restore_mosaic_{condition}.png")
        means = {name: mean_scores(values) for name, values in scores.items()}
        metric = key_metric(condition)
        margin = round(means["network"][metric] - means["classical"][metric], 2)
        row = {"condition": condition, "images": len(network_seconds), "metric": metric,
               "input": means["input"],
               "classical": {"method": fix.method, "parameter": parameter, **means["classical"]},
               "network": {**means["network"], "weights_id": zoo.default_restore_id(condition),
                           "seconds_per_face": round(float(np.mean(network_seconds)), 3)},
               "margin_db": margin, "target_margin_db": TARGET_MARGIN_DB[condition],
               "met": margin >= TARGET_MARGIN_DB[condition], "classical_tuning_on_val": tried,
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        click.echo(f"{condition}: input {means['input'][metric]:.2f}, {fix.method} {parameter} "
                   f"{means['classical'][metric]:.2f}, network {means['network'][metric]:.2f} dB "
                   f"(margin {margin:+.2f}, target {TARGET_MARGIN_DB[condition]}) in {row['seconds']} s")
    restore_ids = zoo.installed_ids(zoo.RESTORE)
    payload = {"meta": {**run_metadata("cpu"), "restore_weights_ids": restore_ids,
                        "test_folder": display_path(folder), "test_images": f"the first {len(test)} faces by name",
                        "val_folder": display_path(VAL_FOLDER), "val_images": len(val)},
               "speed": {"threads": speed_threads, **speed(speed_threads)},
               "weights_mb": round(sum(zoo.file_size(i, zoo.RESTORE) for i in restore_ids) / 1e6, 2),
               "results": rows}
    write_report(out, payload)
    click.echo(table(rows))
    click.echo(f"wrote {out / 'restore.json'}, {out / 'restore.md'} and the mosaics")


if __name__ == "__main__":
    main()
