"""The torch side of facecodec.arrays, for the networks that need torch (training, restoration, the older
families): images to padded tensors, network output to 8-bit pixels."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

from facecodec.arrays import padded_array


def to_padded_tensor(image: Image.Image, stride: int) -> tuple[torch.Tensor, int, int]:
    """RGB image -> (``1 x 3 x H' x W'`` float tensor in [0, 1], pad_right, pad_bottom), as ``padded_array``."""
    x, pad_right, pad_bottom = padded_array(image, stride)
    return torch.from_numpy(x), pad_right, pad_bottom


def pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """Images ``N x C x H x W`` -> (edge-replicated to multiples of ``stride``, pad_right, pad_bottom)."""
    pad_bottom, pad_right = -x.shape[2] % stride, -x.shape[3] % stride
    if pad_bottom or pad_right:
        x = F.pad(x, (0, pad_right, 0, pad_bottom), mode="replicate")
    return x, pad_right, pad_bottom


def to_pixels(x_hat: torch.Tensor) -> torch.Tensor:
    """Network output in [0, 1] (any shape) -> uint8 pixels of the same shape (facecodec.arrays.to_uint8's rule)."""
    pixels = x_hat.nan_to_num(nan=0.0, posinf=1.0, neginf=0.0)
    return (pixels.clamp_(0, 1) * 255).round_().to(torch.uint8)
