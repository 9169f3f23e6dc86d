"""The classical codecs fcz is measured against, through Pillow: one place for their encoder settings.

Both the benchmarks (benchmarks/operating_points.py) and ``fcz compare`` (facecodec.compare)
encode with these, so a comparison on a user's photo uses exactly the settings of the
published rate-distortion curves:

  * JPEG: libjpeg via Pillow, optimize=True (optimal Huffman tables, as ``cjpeg -optimize``),
    4:2:0 (subsampling=2) or 4:4:4 (subsampling=0).
  * JPEG 2000: OpenJPEG, irreversible 9/7 wavelet, colour transform (mct=1), one quality layer at
    a target rate (a compression ratio against 24-bit RGB); a raw codestream (.j2k, no .jp2 boxes).
  * WebP: libwebp lossy, method=6 (slowest, best).
  * AVIF: libavif via Pillow, 4:4:4, Pillow's default speed (6) and threads.
  * JPEG XL: libjxl via ``pillow-jxl-plugin``, effort 7 (cjxl's default), quality mapped to distance by the plugin.
  * HEIC: libheif and x265 via ``pillow-heif``, 4:4:4.

JPEG XL and HEIC come from Pillow plugins in the ``bench`` extra: anchors for the benchmarks, never needed to code.

No torch here.
"""
from __future__ import annotations

import functools
import importlib
import io
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image, features

SOURCE_BITS_PER_PIXEL = 24  # 8-bit RGB: what a JPEG 2000 "rate" is a compression ratio against


def jpeg_options(quality: int, subsampling: int) -> dict[str, Any]:
    """JPEG at ``quality`` with chroma ``subsampling`` 2 (4:2:0) or 0 (4:4:4)."""
    return {"quality": quality, "subsampling": subsampling, "optimize": True}


def jpeg2000_rate(target_bpp: float) -> float:
    """OpenJPEG's "rates" are compression ratios against the raw 24-bit image."""
    return SOURCE_BITS_PER_PIXEL / target_bpp


def jpeg2000_options(rate: float) -> dict[str, Any]:
    return {"irreversible": True, "mct": 1, "quality_mode": "rates", "quality_layers": [rate], "no_jp2": True}


def webp_options(quality: int) -> dict[str, Any]:
    return {"quality": quality, "method": 6}


def avif_options(quality: int) -> dict[str, Any]:
    return {"quality": quality, "subsampling": "4:4:4"}


def jxl_options(quality: int) -> dict[str, Any]:
    return {"quality": quality, "effort": 7}


def heic_options(quality: int) -> dict[str, Any]:
    return {"quality": quality, "chroma": 444}


# Pillow plugins -> the function that registers their formats (None: importing them does).
PLUGINS = {"pillow_jxl": None, "pillow_heif": "register_heif_opener"}


@functools.cache
def _plugin_registered(name: str) -> bool:
    """Import the Pillow plugin ``name`` and register its formats, once -> whether it is installed."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return False
    if PLUGINS[name]:
        getattr(module, PLUGINS[name])()
    return True


@dataclass(frozen=True)
class Codec:
    """One classical codec at the project's fixed settings, tuned by one number (``parameter``)."""
    name: str       # curve id in the benchmarks, e.g. "jpeg-420"
    label: str      # for people, e.g. "JPEG 4:2:0"
    format: str     # Pillow's format name
    feature: str    # PIL.features name of the library Pillow needs for it
    suffix: str     # file name suffix of what encode() returns
    parameter: str  # "quality" (integers, larger = bigger files) or "rate" (compression ratio, larger = smaller)
    options: Callable[[Any], dict[str, Any]]  # parameter value -> Image.save keyword arguments
    plugin: str = ""  # the Pillow plugin module that brings the format (a key of PLUGINS), or "" for Pillow's own

    def setting(self, value: float) -> str:
        """e.g. "quality=50" or "rate=16.536", as the benchmarks name their points."""
        return f"{self.parameter}={value:g}"

    def available(self) -> bool:
        """Whether this Pillow was built with the library the codec needs, or its plugin is installed (and now
        registered)."""
        if self.plugin:
            return _plugin_registered(self.plugin)
        try:
            return bool(features.check(self.feature))
        except ValueError:  # a Pillow that does not even know the feature's name
            return False

    def encode(self, image: Image.Image | np.ndarray, value: float) -> bytes:
        if self.plugin and not self.available():
            raise OSError(f"{self.label} needs the Pillow plugin {self.plugin} (pip install -e '.[bench]')")
        return encode(image, self.format, self.options(value))


def encode(image: Image.Image | np.ndarray, fmt: str, options: dict[str, Any]) -> bytes:
    """The bytes of the file ``Image.save(format=fmt, **options)`` writes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """Decode a file's bytes with Pillow, fully (Image.open alone is lazy), as RGB."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


CODECS: dict[str, Codec] = {codec.name: codec for codec in [
    Codec("jpeg-420", "JPEG 4:2:0", "JPEG", "jpg", ".jpg", "quality", lambda q: jpeg_options(q, 2)),
    Codec("jpeg-444", "JPEG 4:4:4", "JPEG", "jpg", ".jpg", "quality", lambda q: jpeg_options(q, 0)),
    Codec("jpeg2000", "JPEG 2000", "JPEG2000", "jpg_2000", ".j2k", "rate", jpeg2000_options),
    Codec("webp", "WebP", "WEBP", "webp", ".webp", "quality", webp_options),
    Codec("avif-444", "AVIF 4:4:4", "AVIF", "avif", ".avif", "quality", avif_options),
    Codec("jxl", "JPEG XL (effort 7)", "JXL", "jxl", ".jxl", "quality", jxl_options, plugin="pillow_jxl"),
    Codec("heic-444", "HEIC 4:4:4", "HEIF", "heif", ".heic", "quality", heic_options, plugin="pillow_heif"),
]}

# What Pillow (and its plugins) accept as quality, per format.
QUALITY_RANGES = {"JPEG": (1, 100), "WEBP": (0, 100), "AVIF": (0, 100), "JXL": (0, 100), "HEIF": (0, 100)}
