"""fcz next to the classical codecs on one image, at matched file size: what ``fcz compare`` runs.

    >>> from facecodec.compare import compare, side_by_side, table
    >>> results = compare("face.png")            # fcz first, then JPEG, JPEG 2000, WebP, AVIF
    >>> print(table(results))                    # codec, setting, bytes, bpp, PSNR dB, SSIM
    >>> side_by_side("face.png", results).save("compare.png")

The image is encoded with fcz (the given quality, bits and weights, or the default
setting), then with each classical codec at the project's benchmark settings
(facecodec.classical) at the largest file size not above fcz's:

  * JPEG 4:2:0, WebP and AVIF 4:4:4: bisection over their integer quality (facecodec.ratecontrol, as
    fcz's own ``--size``). Sizes rise with
    quality almost everywhere, so the file found is within one quality step of fcz's size.
    Where even the lowest quality gives a bigger file, that file is kept and flagged
    (``Result.over_target``), with a note saying so.
  * JPEG 2000: the OpenJPEG rate computed for fcz's size (rate = 24 / bpp); OpenJPEG
    may undershoot or overshoot that, so the size is checked and the rate refined
    (bisection between a fitting and a too-large rate) until the file lies within
    ``J2K_TOLERANCE`` below fcz's size or the search runs out. OpenJPEG's sizes rise in
    steps (one per coding pass), so on small images the file can stay several percent
    below fcz's (e.g. 1,429 bytes against 1,538 on a 96x96 face: the next step is 1,558).

Measured on 20 LFW faces at fcz quality 1, 5 and 8 and on astronaut crops of 64..512 pixels:
the bisection found the same file as trying every quality, and every file lay within 10% below
fcz's size (usually within 3%; the largest gaps at fcz's smallest files, where WebP's and
OpenJPEG's sizes move in coarse steps). Tiny images (a few pixels a side) can be smaller in fcz
than any classical file can get, as JPEG's and AVIF's headers alone take about 300 bytes.

Quality is measured as the benchmarks measure it: PSNR on 8-bit RGB (facecodec.metrics.psnr)
and SSIM from scikit-image (channel_axis=2, data_range=255; a smaller window for images under
7 pixels a side, None under 3); bpp = 8 x bytes / (W x H) of the real file.

A codec that this Pillow was built without is kept in the list with ``data`` None and a note,
as is one whose encoder fails on the image (e.g. WebP above 16383 pixels a side).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facecodec import classical
from facecodec.bitstream import FczError
from facecodec.image_io import DEFAULT_MAX_PIXELS, ImageInput, open_image
from facecodec.metrics import bits_per_pixel, psnr
from facecodec.ratecontrol import largest_fitting
from facecodec.zoo import choose

COMPARED = ["jpeg-420", "jpeg2000", "webp", "avif-444"]  # classical.CODECS ids, in table order
J2K_TOLERANCE = 0.01  # JPEG 2000 stops refining once its file is within 1% below the target
J2K_STEPS = 12        # at most this many JPEG 2000 encodes per image


@dataclass(frozen=True)
class Result:
    """One codec's file for the image and how close it stays to the original."""
    codec: str                    # "fcz" or a classical.CODECS id ("jpeg-420", "jpeg2000", ...)
    label: str                    # for people: "fcz", "JPEG 4:2:0", ...
    setting: str                  # "quality=5", "bits=6", "quality=37", "rate=16.536"; "" if skipped
    value: float | None           # the setting's number (fcz's quality or bits, a quality, an OpenJPEG rate)
    suffix: str                   # file name suffix: ".fcz", ".jpg", ".j2k", ".webp", ".avif"
    data: bytes | None            # the file's bytes; None when the codec was skipped
    decoded: Image.Image | None   # the file decoded ("RGB", or "L" for fcz on greyscale input)
    bpp: float | None
    psnr_db: float | None
    ssim: float | None            # None where the image is too small for SSIM (under 3 px a side)
    over_target: bool = False     # a classical file larger than fcz's: even its smallest setting is
    note: str | None = None       # why skipped, or what to know about the match

    @property
    def size(self) -> int | None:
        """File size in bytes (None if skipped)."""
        return None if self.data is None else len(self.data)

    @property
    def skipped(self) -> bool:
        return self.data is None


def ssim(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """SSIM on 8-bit RGB as the benchmarks compute it; a smaller odd window below 7 px a side, None under 3."""
    from skimage.metrics import structural_similarity

    side = min(original.shape[:2])
    if side < 3:
        return None
    window = 7 if side >= 7 else (side if side % 2 else side - 1)
    return float(structural_similarity(original, decoded, channel_axis=2, data_range=255, win_size=window))


def _measure(codec: str, label: str, setting: str, value: float, suffix: str, data: bytes, decoded: Image.Image,
             original: np.ndarray, over_target: bool = False, note: str | None = None) -> Result:
    h, w = original.shape[:2]
    rgb = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
    return Result(codec, label, setting, value, suffix, data, decoded, bits_per_pixel(len(data), w, h),
                  psnr(original, rgb), ssim(original, rgb), over_target, note)


def _skipped(codec: classical.Codec, note: str) -> Result:
    return Result(codec.name, codec.label, "", None, codec.suffix, None, None, None, None, None, False, note)


# --- matching a file size -----------------------------------------------------------------------------

def match_rate(encode: Callable[[float], bytes], target: int, first_rate: float,
               tolerance: float = J2K_TOLERANCE, steps: int = J2K_STEPS) -> tuple[float, bytes, bool]:
    """(rate, data, over_target) for JPEG 2000: the largest file not above ``target`` bytes.

    ``first_rate`` is the rate computed for the target; a larger rate means a smaller file.
    The first file is kept if it lies within ``tolerance`` below the target; otherwise the rate
    is stepped by 25% to bracket the target, then bisected (geometrically) between a fitting
    and a too-large rate, until a file lies within ``tolerance``, the two rates are within 0.1%
    of each other (OpenJPEG's sizes rise in steps, one per coding pass, and on small images a
    step can be several percent), or ``steps`` files have been encoded.
    """
    tried: dict[float, bytes] = {}

    def size(rate: float) -> int:
        if rate not in tried:
            tried[rate] = encode(rate)
        return len(tried[rate])

    def close(rate: float) -> bool:
        return target * (1 - tolerance) <= size(rate) <= target

    rate, fits, too_big = first_rate, None, None  # fits: a rate whose file is <= target; too_big: one above it
    for _ in range(steps):  # one encode per step at most
        if close(rate):
            break
        if size(rate) <= target:
            fits = rate if fits is None else min(fits, rate)
        else:
            too_big = rate if too_big is None else max(too_big, rate)
        if fits is not None and too_big is not None:
            # (fits > too_big: a larger rate, a smaller file.) OpenJPEG's sizes step between coding passes:
            if fits / too_big < 1.001:  # two rates this close straddle such a jump, not a missed size
                break
            rate = math.sqrt(fits * too_big)
        elif fits is None:
            rate *= 1.25
        elif rate / 1.25 < 1:  # ratio 1: as many bytes as raw RGB, nothing larger to try
            break
        else:
            rate /= 1.25
    fitting = [r for r, d in tried.items() if len(d) <= target]
    if not fitting:
        smallest = min(tried, key=lambda r: (len(tried[r]), -r))
        return smallest, tried[smallest], True
    best = max(fitting, key=lambda r: len(tried[r]))
    return best, tried[best], False


# --- the comparison -----------------------------------------------------------------------------------

def compare(image: ImageInput, quality: int | None = None, bits: int | None = None, weights_id: str | None = None,
            device: str = "auto", codecs: list[str] | None = None,
            max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[Result]:
    """Encode ``image`` with fcz, then with each classical codec at fcz's file size -> fcz's Result first.

    ``quality``, ``bits``, ``weights_id`` and ``device`` are those of facecodec.encode (the weights'
    default setting when neither quality nor bits is given). ``codecs`` picks classical codecs by
    their facecodec.classical.CODECS id (default: COMPARED). ``image`` and ``max_pixels`` are as
    facecodec.encode takes them. Raises FczError for an unreadable or oversized image or a setting
    the weights don't have.
    """
    from facecodec.codec import decode, encode  # torch only now

    spec, setting = choose(quality, bits, weights_id)
    rgb, mode = open_image(image, max_pixels)
    original = np.asarray(rgb, dtype=np.uint8)
    with warnings.catch_warnings():  # open_image has warned already; the converted image cannot again
        warnings.simplefilter("ignore")
        data = encode(rgb.convert("L") if mode == "L" else rgb, weights_id=spec.weights_id, device=device,
                      max_pixels=None, **{spec.family.option: setting})
    decoded = decode(data, device=device, max_pixels=None)
    results = [_measure("fcz", "fcz", f"{spec.family.option}={setting}", setting, ".fcz", data, decoded, original)]
    for name in COMPARED if codecs is None else codecs:
        if name not in classical.CODECS:
            raise ValueError(f"unknown codec {name!r}: known are {', '.join(classical.CODECS)}")
        results.append(match(classical.CODECS[name], original, len(data)))
    return results


def match(codec: classical.Codec, original: np.ndarray, target: int) -> Result:
    """``codec`` at the largest file size not above ``target`` bytes (see the module's docstring)."""
    if not codec.available():
        return _skipped(codec, f"skipped: this Pillow was built without {codec.label} support "
                               f"(PIL.features '{codec.feature}')")
    image = Image.fromarray(original)
    h, w = original.shape[:2]
    try:
        if codec.parameter == "rate":
            first = classical.jpeg2000_rate(bits_per_pixel(target, w, h))
            value, data, over = match_rate(lambda r: codec.encode(image, r), target, first)
        else:
            lowest, highest = classical.QUALITY_RANGES[codec.format]
            value, data, over = largest_fitting(range(lowest, highest + 1), lambda q: codec.encode(image, q), target)
        decoded = classical.decode(data)
    except (OSError, ValueError, MemoryError) as exc:  # e.g. WebP refuses sides above 16383 pixels
        return _skipped(codec, f"skipped: the {codec.label} encoder failed on this image: {exc}")
    note = None
    if over:
        note = (f"{codec.label} cannot go as small as fcz's {target:,} bytes on this image: its smallest file "
                f"({codec.setting(value)}) has {len(data):,} bytes")
    return _measure(codec.name, codec.label, codec.setting(value), value, codec.suffix, data, decoded, original,
                    over, note)


# --- the side-by-side sheet ---------------------------------------------------------------------------

MAX_PANEL = 320  # pixels, longer side of each image on the sheet: large photos are scaled down to this
MIN_PANEL = 128  # tiny images are enlarged (nearest neighbour, whole factors) towards this
CROP_ZOOM = 2    # crops are enlarged this much over the image's panel scale (whole factors, 2x..4x in all)
MARGIN, GAP = 10, 10


def _font(size: int = 13) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    from PIL import features

    if features.check("freetype2"):
        return ImageFont.load_default(size=size)
    return ImageFont.load_default()  # Pillow's bitmap font: no FreeType here


def default_crop(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """A ``side`` x ``side`` box (left, upper, right, lower), centred across and at 40% of the height:
    where a portrait's eyes usually are, and the middle of most photos."""
    side = max(1, min(side, width, height))
    left = min(max(0, round(width / 2 - side / 2)), width - side)
    upper = min(max(0, round(height * 0.4 - side / 2)), height - side)
    return left, upper, left + side, upper + side


def _panel_size(width: int, height: int) -> tuple[int, int]:
    longer = max(width, height)
    if longer > MAX_PANEL:
        scale = MAX_PANEL / longer
    else:
        scale = max(1, min(math.ceil(MIN_PANEL / longer), MAX_PANEL // longer))  # whole factors only
    return max(1, round(width * scale)), max(1, round(height * scale))


def _result_lines(result: Result) -> list[tuple[str, str]]:
    """(text, colour) lines under a codec's image."""
    ssim_text = "n/a" if result.ssim is None else f"{result.ssim:.3f}"
    lines = [(f"{result.label} {result.setting}", "black"),
             (f"{result.size:,} B, {result.bpp:.3f} bpp", "black"),
             (f"PSNR {result.psnr_db:.2f} dB, SSIM {ssim_text}", "black")]
    if result.over_target:
        lines.append(("larger than fcz's file", "red"))
    return lines


def side_by_side(original: ImageInput, results: list[Result],
                 crop: tuple[int, int, int, int] | None = None) -> Image.Image:
    """An RGB sheet: the original and each codec's decoded image in a row, labelled with codec, setting,
    bytes, bpp, PSNR and SSIM; below them the same ``crop`` box of each (left, upper, right, lower in
    the original's pixels; default: default_crop) enlarged with nearest neighbour so artefacts show.

    Large images are scaled down to MAX_PANEL pixels a side on the sheet (the crops keep their
    pixels), tiny ones enlarged; the sheet stays under about 2000 x 900 pixels for any image.
    Skipped codecs are left out.
    """
    source = original if isinstance(original, Image.Image) else None
    rgb = source.convert("RGB") if source is not None else open_image(original, None)[0]
    width, height = rgb.size
    shown = [r for r in results if not r.skipped]
    pw, ph = _panel_size(width, height)
    if crop is None:  # 2x the image's pixels, or 4x where the panel already enlarges a tiny image
        crop = default_crop(width, height, math.ceil(pw / min(4, CROP_ZOOM * max(1, pw // width))))
    left, upper, right, lower = crop
    if not (0 <= left < right <= width and 0 <= upper < lower <= height):
        raise FczError(f"crop box {crop} is not inside the {width}x{height} image")
    zoom = max(2, min(4, pw // max(right - left, lower - upper)))
    crop_size = ((right - left) * zoom, (lower - upper) * zoom)

    font, small = _font(13), _font(11)
    line_height = font.getbbox("Ag")[3] + 4
    columns = [("original", [("original", "black"), (f"{width}x{height}, 24 bpp raw", "black"),
                             (f"crop {right - left}x{lower - upper} at ({left},{upper}), x{zoom}", "black")],
                rgb)]
    columns += [(r.label, _result_lines(r), r.decoded.convert("RGB")) for r in shown]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = max(measure.textlength(text, font=font) for _, lines, _ in columns for text, _ in lines)
    column_width = max(pw, crop_size[0], math.ceil(text_width))
    text_height = line_height * max(len(lines) for _, lines, _ in columns)
    title_height = line_height + GAP
    sheet_width = 2 * MARGIN + len(columns) * column_width + (len(columns) - 1) * GAP
    sheet_height = 2 * MARGIN + title_height + ph + GAP // 2 + text_height + GAP + crop_size[1]
    sheet = Image.new("RGB", (sheet_width, sheet_height), "white")
    draw = ImageDraw.Draw(sheet)
    fcz_bytes = next((r.size for r in shown if r.codec == "fcz"), None)
    title = f"{width}x{height} image: fcz and classical codecs at matched file size"
    draw.text((MARGIN, MARGIN), title + (f" (at most fcz's {fcz_bytes:,} bytes)" if fcz_bytes else ""),
              fill="black", font=font)

    resample = Image.Resampling.NEAREST if pw >= width else Image.Resampling.LANCZOS
    for i, (_, lines, image) in enumerate(columns):
        x = MARGIN + i * (column_width + GAP)
        y = MARGIN + title_height
        sheet.paste(image.resize((pw, ph), resample), (x, y))
        if i == 0:  # where the crops come from
            sx, sy = pw / width, ph / height
            draw.rectangle([x + left * sx, y + upper * sy, x + right * sx - 1, y + lower * sy - 1],
                           outline="red", width=1 if pw < 100 else 2)
        y += ph + GAP // 2
        for text, colour in lines:
            draw.text((x, y), text, fill=colour, font=font if colour == "black" else small)
            y += line_height
        y = MARGIN + title_height + ph + GAP // 2 + text_height + GAP
        sheet.paste(image.crop(crop).resize(crop_size, Image.Resampling.NEAREST), (x, y))
    return sheet


# --- the table ------------------------------------------------------------------------------------------

def table(results: list[Result]) -> str:
    """The comparison as aligned text: codec, setting, bytes, bpp, PSNR dB, SSIM; then a note per flagged or
    skipped codec. A file larger than fcz's is marked with * after its size."""
    rows = [("codec", "setting", "bytes ", "bpp", "PSNR dB", "SSIM")]
    for r in results:
        if r.skipped:
            rows.append((r.label, "skipped", "-", "-", "-", "-"))
            continue
        rows.append((r.label, r.setting, f"{r.size:,}" + ("*" if r.over_target else " "), f"{r.bpp:.3f}",
                     f"{r.psnr_db:.2f}", "n/a" if r.ssim is None else f"{r.ssim:.4f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1])]
                       + [cell.rjust(width) for cell, width in zip(row[2:], widths[2:])]).rstrip() for row in rows]
    lines += [("* " if r.over_target else "note: ") + r.note for r in results if r.note]
    return "\n".join(lines)
