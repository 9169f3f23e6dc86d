"""The codecs under test and the settings each is swept over.

Sweeps are chosen to span roughly 0.1 to 3 bpp on 150x150 faces. Where a codec cannot
go that low (JPEG's tables alone cost about 0.2 bpp on an image this small) its curve
simply starts higher; the BD-rate code reports where curves don't overlap.

Encoder choices, fixed for every run so results stay comparable (the classical codecs' options
live in facecodec.classical, which `fcz compare` encodes with too):
  * JPEG: libjpeg via Pillow, optimize=True (optimal Huffman tables, as ``cjpeg -optimize``:
    a lossless saving any careful user gets), 4:2:0 (subsampling=2) and 4:4:4 (subsampling=0).
  * JPEG 2000: OpenJPEG, irreversible 9/7 wavelet, colour transform (mct=1), one quality layer
    at a target rate; saved as a raw codestream (.j2k, no .jp2 box wrapper).
  * WebP: libwebp lossy, method=6 (slowest, best).
  * AVIF: libavif via Pillow, 4:4:4, Pillow's default speed (6) and threads.
  * fcz: for every installed weights id, the settings of its family's sweep: each --quality
    level of the level-numbered models, 13 of the 1..100 qualities of a continuous one, each --bits
    1..8 of the seed's per-image-range model; each at the weights' default --effort.
"""
from __future__ import annotations

import warnings
from typing import Any

import click
import numpy as np
from PIL import Image

import facecodec
from facecodec import FczError, classical, zoo

from benchmarks.common import OperatingPoint, pillow_point

JPEG_QUALITIES = [1, 3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95]
JPEG2000_BPP = [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0]  # targets -> OpenJPEG rates
WEBP_QUALITIES = [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100]
AVIF_QUALITIES = [0, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95]
JXL_QUALITIES = [0, 10, 30, 50, 65, 75, 82, 88, 93, 97]      # pillow-jxl-plugin maps quality to libjxl's distance
HEIC_QUALITIES = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]

CODEC_LABELS = {name: codec.label for name, codec in classical.CODECS.items()}


def label(codec: str) -> str:
    """Human-readable name of a curve id."""
    if codec.startswith("fcz/"):
        return f"fcz ({codec[4:]})"
    return CODEC_LABELS.get(codec, codec)


def fcz_codec(weights_id: str) -> str:
    return f"fcz/{weights_id}"


def _thin(values: list, quick: bool) -> list:
    # --quick keeps every other setting (and always the last), enough to draw the curve's shape.
    return values if not quick else sorted(set(values[::2] + values[-1:]), key=values.index)


def classical_point(codec: classical.Codec, value: float) -> OperatingPoint:
    """A classical codec (facecodec.classical.CODECS) at one value of its quality or rate."""
    return pillow_point(codec.name, codec.format, codec.setting(value), value, **codec.options(value))


def jpeg(quality: int, subsampling: int) -> OperatingPoint:
    return classical_point(classical.CODECS[{2: "jpeg-420", 0: "jpeg-444"}[subsampling]], quality)


def jpeg2000(target_bpp: float) -> OperatingPoint:
    # OpenJPEG's "rates" are compression ratios against the raw 24-bit image.
    return classical_point(classical.CODECS["jpeg2000"], classical.jpeg2000_rate(target_bpp))


def webp(quality: int) -> OperatingPoint:
    return classical_point(classical.CODECS["webp"], quality)


def avif(quality: int) -> OperatingPoint:
    return classical_point(classical.CODECS["avif-444"], quality)


def plugin_points(quick: bool = False) -> list[OperatingPoint]:
    """JPEG XL and HEIC 4:4:4 where their Pillow plugins (the ``bench`` extra) are installed."""
    sweeps = {"jxl": JXL_QUALITIES, "heic-444": HEIC_QUALITIES}
    return [classical_point(classical.CODECS[name], q) for name, sweep in sweeps.items()
            if classical.CODECS[name].available() for q in _thin(sweep, quick)]


def fcz(weights_id: str, quality: int | None = None, bits: int | None = None, device: str = "auto",
        from_file: bool = False) -> OperatingPoint:
    """fcz at one setting; ``from_file``: it encodes the image file as ``fcz encode FILE`` does (a JPEG's tables kept
    in its JPEG source block), its curve named ``fcz/ID (file)``."""
    def encode(image: np.ndarray | bytes) -> bytes:
        with warnings.catch_warnings():   # a JPEG kept as it is, say: the point's file shows it, once per image
            warnings.simplefilter("ignore", facecodec.FczWarning)
            return facecodec.encode(image, quality=quality, bits=bits, weights_id=weights_id, device=device)

    def decode(data: bytes) -> Image.Image:
        return facecodec.decode(data, device=device)

    setting, value = ("quality", quality) if quality is not None else ("bits", bits)
    return OperatingPoint(fcz_codec(weights_id) + (" (file)" if from_file else ""), f"{setting}={value}", value,
                          encode, decode, {"weights_id": weights_id, setting: value, "device": device}, from_file)


def fcz_choice(quality: int | None = None, bits: int | None = None,
               weights_id: str | None = None) -> tuple[str, int | None, int | None]:
    """(weights id, quality, bits) as `fcz encode --quality/--bits/--model` resolves them.

    The options are checked against the weights (a usage error if they don't fit), and where
    neither a quality nor a bit depth is given, the weights' default setting is filled in, so
    a benchmark names the exact setting it measured.
    """
    try:
        spec, setting = zoo.choose(quality, bits, weights_id)
    except FczError as exc:
        raise click.UsageError(str(exc)) from None
    chosen = {"quality": None, "bits": None, spec.family.option: setting}
    return spec.weights_id, chosen["quality"], chosen["bits"]


def default_setting(weights_id: str) -> str:
    """The setting fcz encodes with when none is asked for, e.g. "quality=5" or "bits=6"."""
    return fcz(*fcz_choice(weights_id=weights_id)).setting


def setting_words(setting: str) -> str:
    """A setting for prose: "quality=5" -> "quality 5"."""
    return setting.replace("=", " ")


def classical_points(quick: bool = False) -> list[OperatingPoint]:
    return ([jpeg(q, 2) for q in _thin(JPEG_QUALITIES, quick)]
            + [jpeg(q, 0) for q in _thin(JPEG_QUALITIES, quick)]
            + [jpeg2000(b) for b in _thin(JPEG2000_BPP, quick)]
            + [webp(q) for q in _thin(WEBP_QUALITIES, quick)]
            + [avif(q) for q in _thin(AVIF_QUALITIES, quick)]
            + plugin_points(quick))


def fcz_points(device: str = "auto") -> list[OperatingPoint]:
    # Every setting of the family's sweep even in --quick (all eight of a level-numbered model; 13 of the
    # 100 continuous qualities): BD-rate needs the whole curve. Lossless weights have one point at infinite PSNR,
    # no curve: benchmarks/lossless.py compares them with the lossless codecs.
    points = []
    for weights_id in zoo.installed_ids():
        family = zoo.load_spec(weights_id).family
        if not family.lossless:
            points += [fcz(weights_id, **{family.option: s}, device=device) for s in family.sweep()]
    return points


def all_points(quick: bool = False, device: str = "auto") -> list[OperatingPoint]:
    return fcz_points(device) + classical_points(quick)


def curves(points: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Points grouped by codec, each group sorted by rate, in first-seen codec order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        grouped.setdefault(point["codec"], []).append(point)
    return {codec: sorted(group, key=lambda p: p["bpp"]) for codec, group in grouped.items()}


def run_default_setting(metadata: dict[str, Any]) -> str:
    """The default fcz setting of a run; results saved before runs recorded it get the installed weights' default."""
    return metadata.get("default_setting") or default_setting(metadata["default_weights_id"])


def default_point(results: dict[str, Any]) -> dict[str, Any]:
    """fcz's default operating point: the default weights at their default setting."""
    meta = results["metadata"]
    codec, setting = fcz_codec(meta["default_weights_id"]), run_default_setting(meta)
    for point in results["points"]:
        if point["codec"] == codec and point["setting"] == setting:
            return point
    raise ValueError(f"results hold no {setting} point for default weights {meta['default_weights_id']}")
