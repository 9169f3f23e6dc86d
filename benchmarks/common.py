"""What every benchmark shares: paths, loading a folder of images, measuring one codec setting, run metadata.

Measurement rules (the same for every codec):
  * quality: PSNR in dB on 8-bit RGB (facecodec.metrics.psnr; an exact decode counts as EXACT_PSNR_DB) and SSIM,
    each per image, then averaged;
  * rate: bpp = 8 x bytes of the real file / (W x H), per image, then averaged;
  * compression ratio = 24 / mean bpp (24-bit RGB source bits over mean coded bits per pixel).
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import click
from PIL import Image, features
from skimage.metrics import structural_similarity

from facecodec import classical, zoo
from facecodec.train.cards import installed_entry
from facecodec.image_io import open_image
from facecodec.metrics import bits_per_pixel, psnr

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDER = REPO_ROOT.parent / "shared" / "data" / "lfw-test"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
REFERENCE_CSV = REPO_ROOT.parent / "shared" / "reference" / "jpeg_vs_jpeg2000_2004.csv"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".avif", ".jp2"}
QUICK_IMAGES = 50
SOURCE_BITS_PER_PIXEL = 24  # 8-bit RGB: the numerator of every compression ratio here

RATIO_CONVENTION = "compression ratio = 24 / mean bpp over images (24-bit RGB source)"
BPP_CONVENTION = "bpp = 8 x real file bytes / (W x H), headers and containers included, averaged per image"


@dataclass(frozen=True)
class TestImage:
    name: str
    pixels: np.ndarray  # H x W x 3 uint8
    source: bytes = b""  # the image file's bytes, for codecs that read the file as a user's command would

    @property
    def megapixels(self) -> float:
        return self.pixels.shape[0] * self.pixels.shape[1] / 1e6


def load_images(folder: Path, limit: int | None = None) -> list[TestImage]:
    """Every image file in ``folder`` (sorted by name, first ``limit``), as 8-bit RGB.

    facecodec's own reader is used so that every codec sees exactly the pixels fcz sees
    (EXIF orientation applied, greyscale expanded to RGB).
    """
    if not folder.is_dir():
        raise click.UsageError(f"image folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if limit is not None:
        paths = paths[:limit]
    if not paths:
        raise click.UsageError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return [file_image(p.name, p.read_bytes()) for p in paths]


def file_image(name: str, data: bytes) -> TestImage:
    """An image file's bytes -> the TestImage of its pixels as fcz reads them, keeping the bytes."""
    return TestImage(name, np.asarray(open_image(data)[0], dtype=np.uint8).copy(), data)


# --- codecs and their settings ------------------------------------------------------------------------

@dataclass(frozen=True)
class OperatingPoint:
    """One codec at one setting: how to turn pixels into the bytes of a file and back."""
    codec: str                  # curve id, e.g. "jpeg-420" or "fcz/theis-c24-v1"
    setting: str                # e.g. "quality=50", "bits=6"
    value: float                # the setting's number, for sorting and for picking points
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], Image.Image]
    options: dict[str, Any] = field(default_factory=dict)  # encoder options, recorded in the results
    reads_file: bool = False    # encode takes the image file's bytes (TestImage.source), not its pixels

    def input_of(self, image: TestImage) -> np.ndarray | bytes:
        """What ``encode`` takes of ``image``: its file's bytes or its pixels."""
        return image.source if self.reads_file else image.pixels


def pillow_point(codec: str, fmt: str, setting: str, value: float, **options: Any) -> OperatingPoint:
    """A Pillow codec: encode with ``Image.save(format=fmt, **options)``, decode with ``Image.open``."""
    def encode(pixels: np.ndarray) -> bytes:
        return classical.encode(pixels, fmt, options)

    def decode(data: bytes) -> Image.Image:
        return classical.decode(data)  # decodes fully (Image.open is lazy), inside the timed call

    return OperatingPoint(codec, setting, value, encode, decode, {"format": fmt, **options})


# --- measuring ----------------------------------------------------------------------------------------

# An exact decode has an infinite PSNR, which no average survives: it counts as 60 dB, the most libvmaf's PSNR gives
# an 8-bit picture (psnr_tools.c). A codec that keeps some pictures exactly (fcz keeping a JPEG input's own
# coefficients) is credited with no more than that.
EXACT_PSNR_DB = 60.0


def capped_psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB on 8-bit RGB, at most ``EXACT_PSNR_DB``."""
    return min(psnr(original, decoded), EXACT_PSNR_DB)


@dataclass(frozen=True)
class ImageResult:
    file_bytes: int
    bpp: float
    psnr_db: float
    ssim: float
    encode_ms: float
    decode_ms: float


def timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """(result, milliseconds) of one call."""
    started = time.perf_counter()
    result = function(*args)
    return result, (time.perf_counter() - started) * 1000


def ssim(original: np.ndarray, decoded: np.ndarray) -> float:
    return float(structural_similarity(original, decoded, channel_axis=2, data_range=255))


def measure_image(point: OperatingPoint, image: TestImage) -> ImageResult:
    """Encode and decode one image at one operating point; rate from the real bytes, quality on RGB."""
    data, encode_ms = timed(point.encode, point.input_of(image))
    decoded, decode_ms = timed(point.decode, data)
    decoded = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
    h, w = image.pixels.shape[:2]
    return ImageResult(len(data), bits_per_pixel(len(data), w, h), capped_psnr(image.pixels, decoded),
                       ssim(image.pixels, decoded), encode_ms, decode_ms)


WARM_UPS = 2  # torch's first calls at a new image shape are slow (kernel selection, allocator growth)


def warm_up(point: OperatingPoint, image: TestImage, rounds: int = WARM_UPS) -> None:
    """Untimed round trips, so one-off costs (loading weights, library init) stay out of the times."""
    for _ in range(rounds):
        point.decode(point.encode(point.input_of(image)))


def summarize(point: OperatingPoint, results: Sequence[ImageResult]) -> dict[str, Any]:
    """Per-point row: means over images; the ratio follows from the mean bpp (RATIO_CONVENTION)."""
    mean = lambda attr: float(np.mean([getattr(r, attr) for r in results]))  # noqa: E731
    bpp = mean("bpp")
    return {
        "codec": point.codec, "setting": point.setting, "value": point.value, "images": len(results),
        "bpp": bpp, "compression_ratio": SOURCE_BITS_PER_PIXEL / bpp,
        "psnr_db": mean("psnr_db"), "psnr_db_std": float(np.std([r.psnr_db for r in results])),
        "ssim": mean("ssim"), "encode_ms": mean("encode_ms"), "decode_ms": mean("decode_ms"),
        "file_bytes": mean("file_bytes"),
    }


def progress(iterable: Iterable | None = None, length: int | None = None, label: str = "") -> Any:
    """A progress bar on stderr, so stdout stays clean for results."""
    return click.progressbar(iterable, length=length, label=label, file=sys.stderr, show_pos=True,
                             show_eta=True)


# --- metadata and output ------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def run_metadata(device: str | None = None) -> dict[str, Any]:
    """Everything needed to tell two runs apart: when, where, which versions and weights."""
    import PIL
    import scipy
    import skimage
    import torch

    import facecodec

    weights = {entry["id"]: {"sha256": entry.get("sha256"),   # None: a coder without learned parts (jpeg-file)
                             "config": installed_entry(entry["id"], entry.get("kind", "codec")).get("config")}
               for entry in zoo.manifest()["weights"]}
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "versions": {
            "facecodec": facecodec.__version__, "torch": torch.__version__, "Pillow": PIL.__version__,
            "numpy": np.__version__, "scikit-image": skimage.__version__, "scipy": scipy.__version__,
            "libjpeg": features.version("jpg"), "libjpeg-turbo": features.version_feature("libjpeg_turbo"),
            "openjpeg": features.version("jpg_2000"),
            "libwebp": features.version("webp"), "libavif": features.version("avif"),
            "lepton-jpeg-python": importlib.metadata.version("lepton-jpeg-python"),
        },
        "weights_ids": zoo.installed_ids(),
        "default_weights_id": zoo.default_weights_id(),
        "weights": weights,
        "conventions": {"bpp": BPP_CONVENTION, "compression_ratio": RATIO_CONVENTION,
                        "psnr": "dB on 8-bit RGB, per image, averaged over images",
                        "ssim": "skimage structural_similarity(channel_axis=2, data_range=255), averaged"},
    }


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")


def display_path(path: Path) -> str:
    """A path relative to the repository root where possible, so results don't record home directories."""
    try:
        return os.path.relpath(path.resolve(), REPO_ROOT)
    except ValueError:
        return str(path)


def check_device(device: str) -> None:
    """Fail early, with a clear message, when a GPU is asked for and PyTorch sees none."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        why = "this PyTorch is a CPU-only build" if torch.version.cuda is None else "no CUDA device is visible"
        raise click.UsageError(f"--device cuda: PyTorch {torch.__version__} sees no GPU here ({why}); "
                               f"use --device cpu or auto")


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (None keeps torch's default); run_metadata records the count in use."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


threads_option = click.option("--threads", type=click.IntRange(min=1),
                              help="torch threads for fcz (default: torch's choice, usually the core count).")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                             show_default=True, help="Where fcz's network runs.")


def fcz_setting_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """fcz's --quality, --bits and --model, as `fcz encode` takes them (resolve with operating_points.fcz_choice)."""
    options = [
        click.option("-q", "--quality", type=click.IntRange(min=1),
                     help="fcz quality level, 1 = smallest files (default weights). Default: the weights' default."),
        click.option("--bits", type=click.IntRange(min=1),
                     help="fcz bit depth of the per-image-range (Theis) weights, which it selects unless --model "
                          "is given."),
        click.option("--model", "weights_id", type=click.Choice(zoo.pixel_codec_ids()),   # these code pixels
                     help=f"fcz weights. Default: {zoo.default_weights_id()}."),
    ]
    for option in reversed(options):  # decorators apply bottom-up: keep --help in this order
        function = option(function)
    return function
