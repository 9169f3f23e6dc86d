"""Beyond PSNR: MS-SSIM, SSIMULACRA2 and identity (is it still the same person?) for fcz and the classical codecs.

    python benchmarks/perceptual.py [SET] [--limit N] [--out benchmarks/results]

SET as for benchmarks/jpeg_sources.py (``thumbnails``, ``faces-val`` or a folder of images); every codec on the
same images in one run, "fcz (file)" coding the image file as ``fcz encode`` does. Per codec and setting: bpp
from the real files, and against the source pixels

* PSNR (dB on RGB);
* MS-SSIM (Wang et al. 2003; Gaussian window, sigma 1.5, 11 taps, on each RGB channel, averaged), over 4 scales:
  the standard 5 need 176 pixels a side and these faces have 90 to 200; the first 4 weights renormalised.
  Reported as dB, -10 log10(1 - MS-SSIM), so that curves spread where they are close to 1;
* SSIMULACRA2 (the ``ssimulacra2`` package, a port of libjxl's metric: 100 = identical, 90 visually lossless,
  70 high quality, 50 medium);
* identity: the distance between dlib's 128-d face embeddings (``face-recognition-models``' ResNet) of the source
  and of the decode, both taken at the source's face (dlib's frontal detector on the source, else the whole
  picture); dlib's own "same person" threshold is 0.6, 0.4 is strict.

Writes perceptual_<set>.md and .json into --out: for each fcz curve the BD-rate against every codec in each
metric (over the metric's range both curves reach), and per codec "bytes to keep identity": for each image the
smallest file of the sweep whose decode is within 0.6 (and 0.4) of the source, the median over the images that
have one. Needs the ``bench`` extra (ssimulacra2, dlib-bin, face-recognition-models; the last needs
setuptools<81 for its loader).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import io
import time
import warnings
from typing import Any, Callable

import click
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from facecodec.metrics import bits_per_pixel
from facecodec.train import bdrate

from benchmarks.common import OperatingPoint, TestImage, capped_psnr, progress, run_metadata
from benchmarks.jpeg_sources import chosen_set, curve_label, points, publish, set_options

MS_SSIM_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363])   # Wang et al.'s first four, renormalised below
IDENTITY_THRESHOLDS = (0.6, 0.4)
METRICS = {"psnr_db": "PSNR (dB)", "ms_ssim_db": "MS-SSIM (dB)", "ssimulacra2": "SSIMULACRA2",
           "identity": "identity (1 - distance)"}


# --- metrics --------------------------------------------------------------------------------------------------

def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two ``H x W x 3`` uint8 images over ``len(MS_SSIM_WEIGHTS)`` scales (see the module docstring)."""
    weights = MS_SSIM_WEIGHTS / MS_SSIM_WEIGHTS.sum()
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for scale in range(len(weights)):
        blur = lambda v: gaussian_filter(v, sigma=(1.5, 1.5, 0), truncate=3.5, mode="reflect")  # noqa: E731 (11 taps)
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if scale == len(weights) - 1:
            values.append(np.mean((2 * mx * my + c1) / (mx * mx + my * my + c1) * cs, axis=(0, 1)))
        else:
            values.append(np.mean(cs, axis=(0, 1)))
            h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
            x = x[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
            y = y[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    per_channel = np.prod(np.maximum(np.array(values), 0) ** weights[:, None], axis=0)
    return float(per_channel.mean())


def ssimulacra2_score(a: np.ndarray, b: np.ndarray) -> float:
    from ssimulacra2 import compute_ssimulacra2  # takes files: hand it PNGs in memory

    files = []
    for pixels in (a, b):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)
        buffer.seek(0)
        files.append(buffer)
    return float(compute_ssimulacra2(*files))


class Identity:
    """dlib's face embedding, taken at the source's face box (``box``), and the distance between two faces."""

    def __init__(self) -> None:
        import dlib
        with warnings.catch_warnings():   # its loader's pkg_resources deprecation
            warnings.simplefilter("ignore")
            import face_recognition_models as models
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(models.pose_predictor_model_location())
        self.network = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def box(self, pixels: np.ndarray):
        found = self.detector(pixels, 1)
        h, w = pixels.shape[:2]
        return max(found, key=lambda r: r.area()) if found else self.dlib.rectangle(0, 0, w - 1, h - 1)

    def embedding(self, pixels: np.ndarray, box) -> np.ndarray:
        return np.asarray(self.network.compute_face_descriptor(pixels, self.landmarks(pixels, box)))


# --- the run --------------------------------------------------------------------------------------------------

def measure(codec_points: list[OperatingPoint], test_images: list[TestImage]) -> list[dict[str, Any]]:
    """One row per (point, image): bpp and every metric."""
    identity = Identity()
    sources = [(identity.box(image.pixels), image) for image in test_images]
    sources = [(box, image, identity.embedding(image.pixels, box)) for box, image in sources]
    rows = []
    with progress(length=len(codec_points) * len(test_images), label="perceptual") as bar:
        for point in codec_points:
            for index, (box, image, embedding) in enumerate(sources):
                data = point.encode(point.input_of(image))
                decoded = np.asarray(point.decode(data).convert("RGB"), dtype=np.uint8)
                h, w = image.pixels.shape[:2]
                rows.append({"codec": point.codec, "setting": point.setting, "image": index,
                             "bytes": len(data), "bpp": bits_per_pixel(len(data), w, h),
                             "psnr_db": capped_psnr(image.pixels, decoded),
                             "ms_ssim_db": -10 * np.log10(max(1 - ms_ssim(image.pixels, decoded), 1e-10)),
                             "ssimulacra2": ssimulacra2_score(image.pixels, decoded),
                             "distance": float(np.linalg.norm(identity.embedding(decoded, box) - embedding))})
                bar.update(1)
    return rows


def curves_of(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Codec -> its points, each the mean over images of bpp and every metric (identity as 1 - mean distance)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["codec"], row["setting"]), []).append(row)
    out: dict[str, list[dict[str, float]]] = {}
    for (codec, setting), group in grouped.items():
        mean: Callable[[str], float] = lambda key: float(np.mean([r[key] for r in group]))  # noqa: E731
        out.setdefault(codec, []).append({"setting": setting, "bpp": mean("bpp"), "psnr_db": mean("psnr_db"),
                                          "ms_ssim_db": mean("ms_ssim_db"), "ssimulacra2": mean("ssimulacra2"),
                                          "identity": 1 - mean("distance")})
    return {codec: sorted(points, key=lambda p: p["bpp"]) for codec, points in out.items()}


def bd_rates(curves: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """fcz curve -> metric -> anchor codec -> BD-rate (%)."""
    return {name: {metric: {anchor: bdrate.bd_rate([p["bpp"] for p in other], [p[metric] for p in other],
                                                    [p["bpp"] for p in curve], [p[metric] for p in curve]).percent
                            for anchor, other in curves.items() if anchor != name}
                   for metric in METRICS}
            for name, curve in curves.items() if name.startswith("fcz")}


def bytes_to_identity(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Codec -> threshold -> the median smallest bytes whose decode is within it, the images that have one, and how
    many of those already pass at the codec's smallest file (there the figure is an upper bound)."""
    out: dict[str, dict[str, Any]] = {}
    for codec in dict.fromkeys(r["codec"] for r in rows):
        mine = [r for r in rows if r["codec"] == codec]
        least: dict[int, int] = {}
        for r in mine:
            least[r["image"]] = min(least.get(r["image"], r["bytes"]), r["bytes"])
        out[codec] = {}
        for threshold in IDENTITY_THRESHOLDS:
            smallest: dict[int, int] = {}
            for r in mine:
                if r["distance"] < threshold:
                    smallest[r["image"]] = min(smallest.get(r["image"], r["bytes"]), r["bytes"])
            out[codec][str(threshold)] = {"median_bytes": float(np.median(list(smallest.values()))) if smallest else None,
                                          "images": len(smallest),
                                          "at_smallest": sum(b == least[i] for i, b in smallest.items())}
    return out


def markdown(results: dict[str, Any]) -> str:
    meta = results["metadata"]
    lines = [f"# Beyond PSNR: {meta['set']}", "",
             f"{meta['images']} images, {meta['date']}, commit {meta['git_commit']}. Made by "
             f"`python benchmarks/perceptual.py {meta['set_argument']} --limit {meta['images']}`; metrics as its "
             f"docstring says.", ""]
    for name, per_metric in results["bd_rate"].items():
        lines += [f"## BD-rate of {name} (negative: fewer bits for the same score)", "",
                  "| metric | " + " | ".join(curve_label(a) for a in per_metric["psnr_db"]) + " |",
                  "| --- |" + " ---: |" * len(per_metric["psnr_db"])]
        for metric, against in per_metric.items():
            lines.append(f"| {METRICS[metric]} | " + " | ".join("n/a" if v is None else f"{v:+.1f} %"
                                                                  for v in against.values()) + " |")
        lines.append("")
    lines += ["## Bytes to keep identity (median smallest file whose decode stays within the distance)", "",
              "Images: those with a file within the distance; at least: of those, how many pass already at the "
              "codec's smallest file (for them the figure is an upper bound).", "",
              "| codec | distance < 0.6 | images | at least | distance < 0.4 | images | at least |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for codec, found in results["bytes_to_identity"].items():
        cells = []
        for threshold in IDENTITY_THRESHOLDS:
            entry = found[str(threshold)]
            cells += ["n/a" if entry["median_bytes"] is None else f"{entry['median_bytes']:,.0f}", str(entry["images"]),
                      str(entry["at_smallest"])]
        lines.append(f"| {curve_label(codec)} | " + " | ".join(cells) + " |")
    lines += ["", "## Curves", "", "| codec | setting | bpp | PSNR | MS-SSIM dB | SSIMULACRA2 | 1 - distance |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for codec, curve in results["curves"].items():
        for p in curve:
            lines.append(f"| {curve_label(codec)} | {p['setting']} | {p['bpp']:.3f} | {p['psnr_db']:.2f} | "
                         f"{p['ms_ssim_db']:.2f} | {p['ssimulacra2']:.1f} | {p['identity']:.3f} |")
    return "\n".join(lines) + "\n"


@click.command()
@set_options
def main(which: str, limit: int | None, out: Path) -> None:
    """MS-SSIM, SSIMULACRA2 and identity BD-rates, and bytes to keep identity, for fcz and the classical codecs."""
    name, test_images = chosen_set(which, limit)
    started = time.perf_counter()
    rows = measure(points(), test_images)
    curves = curves_of(rows)
    results = {"metadata": {**run_metadata("cpu"), "set": name, "set_argument": which, "images": len(test_images),
                            "elapsed_s": round(time.perf_counter() - started, 1)},
               "curves": curves, "bd_rate": bd_rates(curves), "bytes_to_identity": bytes_to_identity(rows),
               "rows": rows}
    publish(out / f"perceptual_{name}", results, markdown(results))
    plot(results, out / f"perceptual_{name}.png")


def plot(results: dict[str, Any], path: Path) -> Path:
    """The four metrics against bpp, every codec (matplotlib, from the bench extra)."""
    from benchmarks.plots import metric_panels

    meta = results["metadata"]
    return metric_panels(results["curves"], METRICS, f"{meta['set']}: {meta['images']} images, every codec on the same "
                         f"images (identity: 1 - dlib embedding distance)", path)


if __name__ == "__main__":
    main()
