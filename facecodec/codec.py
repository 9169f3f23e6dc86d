"""The codec's one path for the data, each step a named call::

    encode: image -> padded tensor -> g_a -> per-channel ranges -> quantize -> symbols
                  -> range coder -> .fcz container bytes
    decode: .fcz bytes -> container -> range decoder -> symbols -> dequantize -> g_s
                  -> crop and clip -> image

Both networks run in overlapping tiles of ``TILE`` pixels (facecodec.tiling), so
memory stays bounded for large photos; images up to ``TILE`` a side take one pass.
"""
from __future__ import annotations

import torch
from PIL import Image

from facecodec import quantizer
from facecodec.bitstream import FczError, FczHeader, decode_symbols, encode_symbols, pack, unpack
from facecodec.image_io import ImageInput, open_image, to_image, to_padded_tensor
from facecodec.tiling import run_in_tiles
from facecodec.zoo import Weights, default_weights_id, load_weights

DEFAULT_BITS = 6
TILE = 512  # pixels a side per network pass: bounds memory for large images


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FczError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    if device not in ("cpu", "cuda"):
        raise FczError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def analyse(weights: Weights, x: torch.Tensor) -> torch.Tensor:
    """g_a over a padded image tensor, tile by tile -> float32 features."""
    model = weights.model
    return run_in_tiles(model.encode, x, TILE, model.encode_margin, 1, weights.stride).float()


def synthesise(weights: Weights, y: torch.Tensor) -> torch.Tensor:
    """g_s over dequantized features, tile by tile -> padded image tensor (unclipped)."""
    model = weights.model
    return run_in_tiles(model.decode, y, TILE // weights.stride, model.decode_margin, weights.stride, 1)


@torch.inference_mode()
def encode(image: ImageInput, bits: int = DEFAULT_BITS, weights_id: str | None = None,
           device: str = "auto") -> bytes:
    """Compress an image (PIL image, uint8 array, path or file object) to the bytes of a .fcz file."""
    try:
        quantizer.check_bits(bits)
    except ValueError as exc:
        raise FczError(str(exc)) from None
    rgb, mode = open_image(image)
    weights = load_weights(weights_id or default_weights_id(), resolve_device(device))
    x, pad_right, pad_bottom = to_padded_tensor(rgb, weights.stride)
    y = analyse(weights, x.to(weights.device))
    lo, hi = quantizer.channel_ranges(y)
    symbols = quantizer.quantize(y, lo, hi, bits)[0].cpu().numpy()
    payload = encode_symbols(symbols, weights.entropy_tables[bits])
    header = FczHeader(
        weights_id=weights.weights_id, width=rgb.width, height=rgb.height, mode=mode, bits=bits,
        pad_right=pad_right, pad_bottom=pad_bottom, latent_shape=tuple(symbols.shape),
        channel_ranges=tuple(zip(lo[0].tolist(), hi[0].tolist())),
    )
    return pack(header, payload)


def read_header(data: bytes) -> FczHeader:
    """Parse and validate a .fcz file's header (checksum included) without decoding it."""
    return unpack(data)[0]


@torch.inference_mode()
def decode(data: bytes, device: str = "auto") -> Image.Image:
    """Decompress the bytes of a .fcz file to a PIL image (mode "RGB" or "L", as encoded)."""
    header, payload = unpack(data)
    weights = load_weights(header.weights_id, resolve_device(device))
    _check_matches_weights(header, weights)
    symbols = decode_symbols(payload, weights.entropy_tables[header.bits], header.latent_shape[1:])
    lo, hi = (torch.tensor(r, dtype=torch.float32)[None] for r in zip(*header.channel_ranges))
    y = quantizer.dequantize(torch.from_numpy(symbols)[None], lo, hi, header.bits)
    x_hat = synthesise(weights, y.to(weights.device))
    return to_image(x_hat, header.width, header.height, header.mode)


def _check_matches_weights(header: FczHeader, weights: Weights) -> None:
    if header.latent_shape[0] != weights.channels or header.stride != weights.stride:
        raise FczError(f"corrupt file: latent shape {header.latent_shape} is not what weights "
                       f"{weights.weights_id!r} produce ({weights.channels} channels, stride {weights.stride})")
    if header.pad_right >= weights.stride or header.pad_bottom >= weights.stride:
        raise FczError("corrupt file: padding is not smaller than the model's stride")
