"""Images into the codec: any file Pillow reads, checked and normalised to an RGB image (no torch here).

The step after this one, image -> tensor and back, is facecodec.tensors.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from typing import IO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facecodec.bitstream.container import MAX_SIDE
from facecodec.bitstream.errors import FczError
from facecodec.jpeg_lattice import SOURCE_KEY, jpeg_source
from facecodec.metadata import NO_METADATA, ORIGIN, decoded_from, from_image, save_options

ImageInput = Union[Image.Image, np.ndarray, bytes, bytearray, memoryview, str, os.PathLike, IO[bytes]]

# Like Pillow's MAX_IMAGE_PIXELS, but lower: past it an encode or decode takes minutes on a small
# machine (a 40-megapixel decode took 103 s and 0.76 GB on 2 busy cores; 4096 x 4096 takes about
# a third of that). A 12-megapixel phone photo fits. Callers raise it with max_pixels=, the
# command line with --max-pixels.
DEFAULT_MAX_PIXELS = 4096 * 4096


class FczWarning(UserWarning):
    """Something the user should know about an input that was still encoded (e.g. a dropped alpha channel)."""


def check_size(width: int, height: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Refuse a size outside the format's limits, or of more than ``max_pixels`` pixels (None: no limit)."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise FczError(f"image is {width}x{height}; facecodec encodes 1..{MAX_SIDE} pixels a side")
    if max_pixels is not None and width * height > max_pixels:
        raise FczError(f"image is {width}x{height} = {width * height:,} pixels, more than the limit of "
                       f"{max_pixels:,} (raise it with max_pixels= or --max-pixels)")


@contextlib.contextmanager
def reading(path: str | os.PathLike):
    """Turn the OS's errors about opening ``path`` into one FczError that names it."""
    try:
        yield
    except FileNotFoundError:
        raise FczError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FczError(f"{path}: is a directory") from None
    except OSError as exc:
        raise FczError(f"{path}: cannot read: {exc.strerror or exc}") from None


def open_image(source: ImageInput, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               to_encode: bool = True) -> tuple[Image.Image, str]:
    """Read and normalise an input image -> (RGB image, mode to decode back to: "RGB" or "L").

    ``source``: a PIL image, a uint8 array, the bytes of an image file, a path or a
    binary file object. The size is checked from the file header before any pixels
    are decoded, so an oversized file (or a decompression bomb) is refused without loading it. ``to_encode``: warn
    when the image says it was decoded from a lossy .fcz file (coding it again adds a second loss; restoring it
    does not). A JPEG's lattice and file size are left in the RGB image's ``info[SOURCE_KEY]``
    (facecodec.jpeg_lattice.JpegSource), for the encoder.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    if isinstance(source, np.ndarray):
        image = _array_to_image(source)
    elif isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (str, os.PathLike)):
        with reading(source):
            image = _open_file(source)
    elif hasattr(source, "read"):
        image = _open_file(source)
    else:
        raise TypeError(f"image must be a PIL image, a uint8 array, image file bytes, a path or a binary file "
                        f"object, not {type(source).__name__}")
    check_size(*image.size, max_pixels)
    _warn_about_losses(image)
    origin = decoded_from(image) if to_encode else None
    if origin:
        warnings.warn(f"the input was decoded from a lossy .fcz file ({origin}): coding it again adds a second loss "
                      f"to the first; encode the original, or keep the .fcz", FczWarning, stacklevel=2)
    source = jpeg_source(image)
    try:
        image = ImageOps.exif_transpose(image)  # phones store portraits sideways plus an orientation tag
        mode = "L" if image.mode in ("1", "L", "LA", "I", "F") or image.mode.startswith("I;16") else "RGB"
        if image.mode == "I" or image.mode == "F" or image.mode.startswith("I;16"):
            # 16-bit or float greyscale: scale to 8 bits, not clip
            array = np.asarray(image, dtype=np.float64)
            peak = 65535.0 if array.max() > 255 else 255.0
            image = Image.fromarray(np.clip(array / peak * 255 + 0.5, 0, 255).astype(np.uint8))
        rgb = image.convert("RGB")
        _drop_foreign_profile(rgb, mode)
        if source is not None:
            rgb.info[SOURCE_KEY] = source
        return rgb, mode
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt pixel data
        raise FczError(f"cannot decode image: {exc}") from None


def _open_file(source: str | os.PathLike | IO[bytes]) -> Image.Image:
    try:
        return Image.open(source)
    except UnidentifiedImageError:
        raise FczError("not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:  # Pillow's own guard, about 179 megapixels
        found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(exc))
        if found is None:
            raise FczError(f"image refused as too large: {exc}") from None
        pixels, limit = (int(n) for n in found.groups())
        raise FczError(f"image refused as too large: {pixels:,} pixels, more than Pillow opens ({limit:,}); "
                       f"facecodec encodes 1..{MAX_SIDE} pixels a side") from None


def _warn_about_losses(image: Image.Image) -> None:
    """Say what .fcz cannot keep: alpha, frames after the first, samples deeper than 8 bits."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        warnings.warn("alpha channel dropped: .fcz stores colour only", FczWarning, stacklevel=3)
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        warnings.warn(f"only the first of {frames} frames is encoded: .fcz stores one still image",
                      FczWarning, stacklevel=3)
    # Pillow reads 16-bit RGB as 8-bit "RGB" and says so only in the raw mode of its pending tiles.
    raw_modes = [str(tile.args[0] if isinstance(tile.args, tuple) else tile.args) for tile in getattr(image, "tile", None) or []]
    if image.mode in ("I", "F") or image.mode.startswith("I;16") or any(";16" in m for m in raw_modes):
        warnings.warn("samples deeper than 8 bits reduced to 8 bits: .fcz stores 8-bit images",
                      FczWarning, stacklevel=3)


# An ICC profile names the colour space of the numbers it describes (bytes 16..19 of its header, ICC.1 7.2.6).
# Pillow converts CMYK or Lab pixels to RGB without the profile, so that profile no longer describes them.
PROFILE_SPACES = {"RGB": b"RGB ", "L": b"GRAY"}


def _drop_foreign_profile(image: Image.Image, mode: str) -> None:
    """Remove an ICC profile that does not describe the pixels as they are coded, and say so."""
    profile = image.info.get("icc_profile")
    if profile and bytes(profile[16:20]) != PROFILE_SPACES[mode]:
        space = bytes(profile[16:20]).decode("ascii", "replace").strip() or "unknown"
        del image.info["icc_profile"]
        warnings.warn(f"ICC profile dropped: it describes {space} pixels, and the image is coded as {mode}",
                      FczWarning, stacklevel=3)


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise FczError(f"arrays must be uint8 H x W or H x W x 3 (or 4); got {array.dtype} {array.shape}")
    return Image.fromarray(array)


# The image formats decode and restore write: Pillow writes them all. Each file extension names its format;
# a format's outputs take its first extension.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".bmp": "BMP"}
FORMAT_SUFFIXES = {fmt: next(s for s, f in OUTPUT_FORMATS.items() if f == fmt) for fmt in dict.fromkeys(OUTPUT_FORMATS.values())}
LOSSY_FORMATS = ("JPEG", "WEBP")  # the formats a save quality applies to


def image_file(image: Image.Image, fmt: str, quality: int | None = None, strip: bool = False) -> bytes:
    """The bytes of ``image`` saved as ``fmt`` (Pillow's name), at ``quality`` for JPEG and WebP, with the ICC
    profile, EXIF and XMP in its ``info`` unless ``strip``; an FczWarning names what ``fmt`` cannot carry."""
    options, dropped = save_options(NO_METADATA if strip else from_image(image), fmt,
                                    "" if strip else image.info.get(ORIGIN, ""))
    if dropped:
        listed = ", ".join(dropped[:-1]) + " and " + dropped[-1] if len(dropped) > 1 else dropped[0]
        warnings.warn(f"{listed} not written: {fmt} output cannot carry "
                      f"{'them' if len(dropped) > 1 else 'it'} (--strip drops metadata without this warning)",
                      FczWarning, stacklevel=2)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options, **({"quality": quality} if quality is not None else {}))
    return buffer.getvalue()
