"""The codec's one path for the data, each step a named call::

    encode: image -> padded tensor -> g_a -> quantize -> symbols -> range coder -> .fcz container bytes
    decode: .fcz bytes -> container -> range decoder -> symbols -> dequantize -> g_s -> crop and clip -> image

Two quantizers exist, chosen by the weights (``Weights.quantizer``):
  * "gained" (the default model): features times the gain vector of a quality
    level, rounded to 6-bit integers; the header stores only the level.
  * "ranges" (the seed's Theis model): each channel of each image mapped from its
    own [min, max] onto ``2**bits`` levels; the header stores the ranges.

Both networks run in overlapping tiles of ``TILE`` pixels (facecodec.tiling), so
memory stays bounded for large photos; images up to ``TILE`` a side take one pass.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from facecodec import quantizer
from facecodec.bitstream import FczError, FczHeader, decode_symbols, encode_symbols, pack, unpack
from facecodec.image_io import ImageInput, open_image, to_image, to_padded_tensor
from facecodec.models.gained import SYMBOL_BITS
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


def select_weights(quality: int | None, bits: int | None, weights_id: str | None, device: str = "auto") -> Weights:
    """The weights an encode uses, after checking that ``quality`` or ``bits`` fits them.

    Without a weights id, ``bits`` picks the installed per-image-range model (the
    seed's fixed-bit-depth path) and anything else the default model.
    """
    if quality is not None and bits is not None:
        raise FczError("give a quality level or a bit depth, not both")
    if bits is not None:
        try:
            quantizer.check_bits(bits)
        except ValueError as exc:
            raise FczError(str(exc)) from None
    weights = load_weights(weights_id or default_weights_id("ranges" if bits is not None else None),
                           resolve_device(device))
    if weights.quantizer == "gained":
        if bits is not None:
            raise FczError(f"weights {weights.weights_id!r} take a quality level (1..{weights.levels}), not a bit depth")
        if quality is not None and not 1 <= quality <= weights.levels:
            raise FczError(f"quality must be between 1 and {weights.levels}, got {quality}")
    elif quality is not None:
        raise FczError(f"weights {weights.weights_id!r} take a bit depth (1..{quantizer.MAX_BITS}), not a quality level")
    return weights


def quantize(weights: Weights, y: torch.Tensor, quality: int | None, bits: int | None) -> tuple[np.ndarray, dict]:
    """Features ``1 x C x h x w`` -> (symbols ``C x h x w``, the header fields that undo it)."""
    if weights.quantizer == "gained":
        level = quality or weights.default_quality
        symbols = weights.model.symbols(y, level - 1)[0].cpu().numpy()
        return symbols, {"quality": level, "bits": SYMBOL_BITS, "channel_ranges": ()}
    bits = bits or DEFAULT_BITS
    lo, hi = quantizer.channel_ranges(y)
    symbols = quantizer.quantize(y, lo, hi, bits)[0].cpu().numpy()
    return symbols, {"bits": bits, "channel_ranges": tuple(zip(lo[0].tolist(), hi[0].tolist()))}


def dequantize(weights: Weights, symbols: np.ndarray, header: FczHeader) -> torch.Tensor:
    """Symbols ``C x h x w`` -> features ``1 x C x h x w`` on the weights' device."""
    q = torch.from_numpy(symbols)[None].to(weights.device)
    if header.quality:
        return weights.model.features(q, header.quality - 1)
    lo, hi = (torch.tensor(r, dtype=torch.float32)[None] for r in zip(*header.channel_ranges))
    return quantizer.dequantize(q, lo.to(weights.device), hi.to(weights.device), header.bits)


@torch.inference_mode()
def encode(image: ImageInput, quality: int | None = None, bits: int | None = None,
           weights_id: str | None = None, device: str = "auto") -> bytes:
    """Compress an image (PIL image, uint8 array, path or file object) to the bytes of a .fcz file.

    ``quality`` (1 = smallest file) applies to the default model; ``bits`` (1..8)
    to the seed's per-image-range model, which it selects unless ``weights_id`` is given.
    """
    weights = select_weights(quality, bits, weights_id, device)
    rgb, mode = open_image(image)
    x, pad_right, pad_bottom = to_padded_tensor(rgb, weights.stride)
    y = analyse(weights, x.to(weights.device))
    symbols, fields = quantize(weights, y, quality, bits)
    header = FczHeader(weights_id=weights.weights_id, width=rgb.width, height=rgb.height, mode=mode,
                       pad_right=pad_right, pad_bottom=pad_bottom, latent_shape=tuple(symbols.shape), **fields)
    return pack(header, encode_symbols(symbols, weights.entropy_tables[header.table_name]))


def read_header(data: bytes) -> FczHeader:
    """Parse and validate a .fcz file's header (checksum included) without decoding it."""
    return unpack(data)[0]


@torch.inference_mode()
def decode(data: bytes, device: str = "auto") -> Image.Image:
    """Decompress the bytes of a .fcz file to a PIL image (mode "RGB" or "L", as encoded)."""
    header, payload = unpack(data)
    weights = load_weights(header.weights_id, resolve_device(device))
    _check_matches_weights(header, weights)
    symbols = decode_symbols(payload, weights.entropy_tables[header.table_name], header.latent_shape[1:])
    x_hat = synthesise(weights, dequantize(weights, symbols, header))
    return to_image(x_hat, header.width, header.height, header.mode)


def _check_matches_weights(header: FczHeader, weights: Weights) -> None:
    if header.latent_shape[0] != weights.channels or header.stride != weights.stride:
        raise FczError(f"corrupt file: latent shape {header.latent_shape} is not what weights "
                       f"{weights.weights_id!r} produce ({weights.channels} channels, stride {weights.stride})")
    if header.pad_right >= weights.stride or header.pad_bottom >= weights.stride:
        raise FczError("corrupt file: padding is not smaller than the model's stride")
    table = weights.entropy_tables.get(header.table_name)
    if table is None or table.shape[1] != 2**header.bits:
        raise FczError(f"corrupt file: weights {weights.weights_id!r} have no quantizer setting "
                       f"{'quality ' + str(header.quality) if header.quality else str(header.bits) + ' bits'}")
