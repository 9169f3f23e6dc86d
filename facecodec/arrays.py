"""Images to the codec's numpy arrays and back: padding to the model's stride, rounding to 8 bits, cropping.

The codec's path runs on numpy arrays (``N x C x H x W``, float32 in [0, 1] or uint8 pixels), whatever runs
its transforms; torch networks convert at their own boundary (facecodec.models.torch_transform).
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def padded_array(image: Image.Image, stride: int) -> tuple[np.ndarray, int, int]:
    """RGB image -> (``1 x 3 x H' x W'`` float32 in [0, 1], pad_right, pad_bottom).

    Edge replication fills the padding: it adds no new structure for the encoder to spend bits on, unlike zeros.
    """
    x = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
    pad_bottom, pad_right = -x.shape[2] % stride, -x.shape[3] % stride
    if pad_bottom or pad_right:
        x = np.pad(x, ((0, 0), (0, 0), (0, pad_bottom), (0, pad_right)), mode="edge")
    return x, pad_right, pad_bottom


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Transform output in [0, 1] (any shape) -> uint8 pixels of the same shape.

    Decoders convert tile by tile, so a large image never exists as floats all at once.
    """
    # A hostile but valid file can drive a transform to inf or NaN; casting those to uint8 is
    # platform-dependent, so pin them to the range first.
    pixels = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(pixels, 0, 1) * np.float32(255)).astype(np.uint8)


def to_image(pixels: np.ndarray, width: int, height: int, mode: str) -> Image.Image:
    """uint8 pixels ``1 x 3 x H' x W'`` -> PIL image cropped to ``width x height`` in ``mode``."""
    image = Image.fromarray(np.ascontiguousarray(pixels[0, :, :height, :width].transpose(1, 2, 0)), "RGB")
    return image.convert(mode) if mode != "RGB" else image
