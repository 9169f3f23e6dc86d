"""Images in and out of the codec: any file Pillow reads -> RGB tensor padded to the model's stride, and back."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import IO, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from facecodec.bitstream.container import MAX_SIDE
from facecodec.bitstream.errors import FczError

ImageInput = Union[Image.Image, np.ndarray, str, Path, IO[bytes]]


class FczWarning(UserWarning):
    """Something the user should know about an input that was still encoded (e.g. a dropped alpha channel)."""


def check_size(width: int, height: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise FczError(f"image is {width}x{height}; facecodec encodes 1..{MAX_SIDE} pixels a side")


def open_image(source: ImageInput) -> tuple[Image.Image, str]:
    """Read and normalise an input image -> (RGB image, mode to decode back to: "RGB" or "L").

    The size is checked from the file header before any pixels are decoded, so an
    oversized file (or a decompression bomb) is refused without loading it.
    """
    if isinstance(source, np.ndarray):
        source = _array_to_image(source)
    if isinstance(source, Image.Image):
        image = source
    else:
        try:
            image = Image.open(source)
        except UnidentifiedImageError:
            raise FczError("not an image Pillow can read") from None
        except Image.DecompressionBombError as exc:  # Pillow's own guard, about 179 megapixels
            raise FczError(f"image refused as too large: {exc}") from None
    check_size(*image.size)
    try:
        image = ImageOps.exif_transpose(image)  # phones store portraits sideways plus an orientation tag
        mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            warnings.warn("alpha channel dropped: .fcz stores colour only", FczWarning, stacklevel=2)
        if image.mode in ("I", "I;16", "F"):  # 16-bit or float greyscale: scale to 8 bits, not clip
            array = np.asarray(image, dtype=np.float64)
            peak = 65535.0 if array.max() > 255 else 255.0
            image = Image.fromarray(np.clip(array / peak * 255 + 0.5, 0, 255).astype(np.uint8))
        return image.convert("RGB"), mode
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt pixel data
        raise FczError(f"cannot decode image: {exc}") from None


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise FczError(f"arrays must be uint8 H x W or H x W x 3 (or 4); got {array.dtype} {array.shape}")
    return Image.fromarray(array)


def to_padded_tensor(image: Image.Image, stride: int) -> tuple[torch.Tensor, int, int]:
    """RGB image -> (1 x 3 x H' x W' float tensor in [0, 1], pad_right, pad_bottom).

    Edge replication fills the padding: it adds no new structure for the
    encoder to spend bits on, unlike zeros.
    """
    x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)[None].float().div_(255)
    return pad_to_stride(x, stride)


def pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """Images ``N x C x H x W`` -> (edge-replicated to multiples of ``stride``, pad_right, pad_bottom)."""
    pad_bottom, pad_right = -x.shape[2] % stride, -x.shape[3] % stride
    if pad_bottom or pad_right:
        x = F.pad(x, (0, pad_right, 0, pad_bottom), mode="replicate")
    return x, pad_right, pad_bottom


def to_image(x_hat: torch.Tensor, width: int, height: int, mode: str) -> Image.Image:
    """Network output ``1 x 3 x H' x W'`` -> PIL image cropped to ``width x height`` in ``mode``."""
    # A hostile but valid file can drive the network to inf or NaN; casting those to uint8 is
    # platform-dependent, so pin them to the range first.
    pixels = x_hat[0, :, :height, :width].nan_to_num(nan=0.0, posinf=1.0, neginf=0.0)
    pixels = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    image = Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), "RGB")
    return image.convert(mode) if mode != "RGB" else image
