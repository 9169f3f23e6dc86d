"""Images to the networks' tensors and back: padding to the model's stride, cropping, rounding to 8 bits."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


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


def to_pixels(x_hat: torch.Tensor) -> torch.Tensor:
    """Network output in [0, 1] (any shape) -> uint8 pixels of the same shape.

    The decoder converts tile by tile, so a large image never exists as floats all at once.
    """
    # A hostile but valid file can drive the network to inf or NaN; casting those to uint8 is
    # platform-dependent, so pin them to the range first.
    pixels = x_hat.nan_to_num(nan=0.0, posinf=1.0, neginf=0.0)
    return (pixels.clamp_(0, 1) * 255).round_().to(torch.uint8)


def to_image(pixels: torch.Tensor, width: int, height: int, mode: str) -> Image.Image:
    """uint8 pixels ``1 x 3 x H' x W'`` -> PIL image cropped to ``width x height`` in ``mode``."""
    image = Image.fromarray(pixels[0, :, :height, :width].permute(1, 2, 0).cpu().numpy(), "RGB")
    return image.convert(mode) if mode != "RGB" else image
