"""The codec's one path for the data, each step a named call::

    encode: image -> padded tensor -> g_a -> latent codec: quantize -> symbols -> range coder -> .fcz container bytes
    decode: .fcz bytes -> container -> range decoder -> symbols -> latent codec: dequantize -> g_s -> crop -> image
            (``reduce``: the wavelet family decodes only the coarse levels, into a smaller image)

How features become symbols, and symbols payload bytes, depends on the model family
and is asked of the weights' latent codec (facecodec.latent), chosen once when the
weights load: quality levels for the default model, per-image ranges at a bit depth
for the seed's Theis model, quality levels and context-adaptive coding for the
wavelet family.

Both networks run in overlapping tiles of ``TILE`` pixels (facecodec.tiling), so
memory stays bounded for large photos; images up to ``TILE`` a side take one pass.
A model whose ``tile`` is None (the wavelet transform) runs over the whole image at once; its
latent codec then codes an image larger than its own tile side as a grid of tiles, each analysed,
quantized, coded and decoded as an image of its own (``tile_boxes``, ``tiles``: format 4), so its
memory too follows the tile and the picture is held whole only as 8-bit pixels.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from facecodec.bitstream import FczError, FczHeader, pack
from facecodec.bitstream.tiles import Box
from facecodec.header import FczSource, check_decodable, fcz_bytes
from facecodec.image_io import DEFAULT_MAX_PIXELS, ImageInput, open_image
from facecodec.numerics import consistent_convolutions
from facecodec.tensors import to_image, to_padded_tensor, to_pixels
from facecodec.tiling import run_in_tiles
from facecodec.zoo import SizeTarget, Weights, choose, load_weights, size_target

TILE = 512  # pixels a side per network pass: bounds memory for large images


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FczError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    if device not in ("cpu", "cuda"):
        raise FczError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


@consistent_convolutions()
def analyse(weights: Weights, x: torch.Tensor) -> torch.Tensor:
    """g_a over a padded image tensor, tile by tile -> float32 features."""
    model = weights.model
    if _whole_image(model):
        return model.encode(x).float()
    return run_in_tiles(model.encode, x, TILE, model.encode_margin, 1, weights.stride).float()


@consistent_convolutions()
def synthesise(weights: Weights, y: torch.Tensor, reduce: int = 0) -> torch.Tensor:
    """g_s over dequantized features, tile by tile -> padded image as uint8 pixels.

    Each tile is rounded to 8 bits as it leaves the network, so peak memory follows the
    tile, not the image: the whole picture is only ever held as bytes. ``reduce`` > 0 (only
    for families whose latent codec has ``max_reduce``): an image 1 / 2^reduce the size.
    """
    model = weights.model
    if reduce:
        return to_pixels(model.decode(y, reduce))
    if _whole_image(model):
        return to_pixels(model.decode(y))
    return run_in_tiles(lambda tile: to_pixels(model.decode(tile)), y, TILE // weights.stride,
                        model.decode_margin, weights.stride, 1)


def _whole_image(model: torch.nn.Module) -> bool:
    """Whether ``model`` transforms whole images only (``tile = None``: the wavelet family), never in tiles."""
    return getattr(model, "tile", TILE) is None


@torch.inference_mode()
def encode(image: ImageInput, quality: int | None = None, bits: int | None = None,
           weights_id: str | None = None, device: str = "auto",
           max_pixels: int | None = DEFAULT_MAX_PIXELS, effort: int | None = None,
           size: int | None = None, bpp: float | None = None) -> bytes:
    """Compress an image to the bytes of a .fcz file.

    ``image``: a PIL image, a uint8 array, the bytes of an image file, a path or a
    binary file object. ``quality`` (1 = smallest file) applies to the default model;
    ``bits`` (1..8) to the seed's per-image-range model, which it selects unless
    ``weights_id`` is given. Images of more than ``max_pixels`` pixels are refused (None: no limit).
    ``effort``: how hard the encoder searches for smaller symbols at the same quality
    (the weights' latent codec says which efforts exist; None: its default).
    ``size`` (bytes) or ``bpp`` (bits per pixel, of the whole file) instead of a quality: the
    best setting whose file is no larger; FczError if even the smallest is.
    """
    spec, setting = choose(quality, bits, weights_id)
    effort = spec.latent.choose_effort(effort)
    target = size_target(size, bpp, given=quality is not None or bits is not None)
    weights = load_weights(spec.weights_id, resolve_device(device))
    rgb, mode = open_image(image, max_pixels)
    return image_to_fcz(weights, rgb, mode, setting, effort, target)


def image_to_fcz(weights: Weights, rgb: Image.Image, mode: str, setting: int, effort: int,
                 target: SizeTarget | None = None) -> bytes:
    """One RGB image -> its .fcz bytes: in one pass, or tile by tile where the weights' latent codec codes
    an image of its size in tiles (format 4), so that the whole picture is held only as 8-bit pixels."""
    boxes = weights.latent.tile_boxes(*rgb.size)
    if boxes is None:
        x, pad_right, pad_bottom = to_padded_tensor(rgb, weights.stride)
        y = analyse(weights, x.to(weights.device))
        return features_to_fcz(weights, y, setting, effort, rgb.size, mode, pad_right, pad_bottom, target)
    return best_fit(weights, lambda at: tiles_to_fcz(weights, rgb, mode, boxes, at, effort), setting, rgb.size,
                    target)


def tiles_to_fcz(weights: Weights, rgb: Image.Image, mode: str, boxes: list[Box], setting: int, effort: int
                 ) -> bytes:
    """An image -> the .fcz bytes of its tiles ``boxes``, each analysed, quantized and coded as an image of its own."""
    headers, payloads = [], []
    for box in boxes:
        tile = rgb.crop(box)
        x, pad_right, pad_bottom = to_padded_tensor(tile, weights.stride)
        symbols, fields = weights.latent.quantize(weights.model, analyse(weights, x.to(weights.device)), setting,
                                                  effort, weights.entropy_tables)
        header, payload = to_payload(weights, symbols[0], fields[0], tile.size, mode, pad_right, pad_bottom)
        headers.append(header)
        payloads.append(payload)
    return pack(*weights.latent.join_tiles(headers, payloads, *rgb.size))


def features_to_fcz(weights: Weights, y: torch.Tensor, setting: int, effort: int, size: tuple[int, int], mode: str,
                    pad_right: int, pad_bottom: int, target: SizeTarget | None = None) -> bytes:
    """One image's features ``1 x C x h x w`` -> its .fcz bytes at ``setting`` (batches share this)."""
    def coded(at: int) -> bytes:
        symbols, fields = weights.latent.quantize(weights.model, y, at, effort, weights.entropy_tables)
        return to_fcz(weights, symbols[0], fields[0], size, mode, pad_right, pad_bottom)

    return best_fit(weights, coded, setting, size, target)


def best_fit(weights: Weights, coded: Callable[[int], bytes], setting: int, size: tuple[int, int],
             target: SizeTarget | None) -> bytes:
    """``coded(setting)``, the .fcz bytes of an image of ``size`` at a setting; with a ``target``, instead the
    highest of the weights' settings whose file fits: a bisection, as file sizes grow with the setting
    (about log2(settings) encodes, 7 for 100 qualities)."""
    if target is None:
        return coded(setting)
    limit, settings = target.limit(*size), weights.latent.settings
    low, high, best, smallest = 0, len(settings) - 1, None, None
    while low <= high:
        middle = (low + high) // 2
        data = coded(settings[middle])
        if len(data) <= limit:
            best, low = data, middle + 1
        else:
            high = middle - 1
            smallest = len(data) if middle == 0 else smallest
    if best is None:
        raise FczError(f"no {weights.latent.noun} fits in {limit:,} bytes: the smallest file "
                       f"({weights.latent.describe(settings[0])}) takes {smallest:,}")
    return best


def to_fcz(weights: Weights, symbols: np.ndarray, fields: dict, size: tuple[int, int], mode: str,
           pad_right: int, pad_bottom: int) -> bytes:
    """One image's symbols ``C x h x w`` and header fields -> the bytes of its .fcz file (batches share this)."""
    return pack(*to_payload(weights, symbols, fields, size, mode, pad_right, pad_bottom))


def to_payload(weights: Weights, symbols: np.ndarray, fields: dict, size: tuple[int, int], mode: str,
               pad_right: int, pad_bottom: int) -> tuple[FczHeader, bytes]:
    """One image's (or tile's) symbols ``C x h x w`` and header fields -> its header and entropy-coded payload."""
    header = FczHeader(weights_id=weights.weights_id, width=size[0], height=size[1], mode=mode,
                       pad_right=pad_right, pad_bottom=pad_bottom, latent_shape=symbols.shape, **fields)
    return header, weights.latent.entropy_encode(symbols, weights.table(header), header)


@torch.inference_mode()
def decode(data: FczSource, device: str = "auto", max_pixels: int | None = DEFAULT_MAX_PIXELS,
           reduce: int = 0) -> Image.Image:
    """Decompress a .fcz file to a PIL image (mode "RGB" or "L", as encoded).

    ``data``: the file's bytes (or bytearray, memoryview), its path or a binary file
    object. Files claiming more than ``max_pixels`` pixels are refused before any
    decoding (None: no limit); peak memory then stays bounded by tiles and the output's bytes.
    ``reduce`` > 0 decodes an image ``1 / 2^reduce`` the size (each side rounded up) from the
    coarse levels alone, faster than a full decode: the wavelet family only (JPEG 2000's reduce).
    """
    header, weights, parts = open_fcz(fcz_bytes(data), device, max_pixels, reduce)
    width, height = reduced_size(header.width, header.height, reduce)
    return to_image(parts_to_pixels(weights, parts, header, reduce), width, height, header.mode)


def reduced_size(width: int, height: int, reduce: int) -> tuple[int, int]:
    """The size of an image decoded at 1 / 2^reduce: each side halved ``reduce`` times, rounded up."""
    return -(-width // 2 ** reduce), -(-height // 2 ** reduce)


Part = tuple[Box, Callable[[], torch.Tensor]]   # a coded part's box in the image, and what decodes its features


def open_fcz(data: bytes, device: str = "auto", max_pixels: int | None = DEFAULT_MAX_PIXELS, reduce: int = 0
             ) -> tuple[FczHeader, Weights, list[Part]]:
    """The bytes of one .fcz file -> (header, weights, its coded parts); batches share this.

    A part is the whole image, or one tile of a file coded in tiles; calling its function range-decodes and
    dequantizes it into the features ``g_s`` takes, so a tiled file's features exist one tile at a time.
    """
    header, payload, spec, table = check_decodable(data, max_pixels)
    reduce = spec.latent.check_reduce(reduce, spec.weights_id)
    weights = load_weights(spec.weights_id, resolve_device(device))
    return header, weights, [(box, partial(part_features, weights, table, part, part_payload, reduce))
                             for box, part, part_payload in weights.latent.tiles(header, payload)]


def part_features(weights: Weights, table: Any, header: FczHeader, payload: bytes, reduce: int = 0) -> torch.Tensor:
    """One untiled payload (a whole file's, or a tile's) -> the features ``g_s`` takes."""
    symbols = weights.latent.entropy_decode(payload, table, header, reduce)
    return weights.latent.dequantize(weights.model, symbols, header)


def parts_to_pixels(weights: Weights, parts: list[Part], header: FczHeader, reduce: int = 0) -> torch.Tensor:
    """A file's parts (``open_fcz``) -> its uint8 pixels ``1 x 3 x H' x W'``, 1 / 2^reduce of the size.

    A file of one part gives its pixels as ``synthesise`` makes them (padded to the stride); the tiles of
    a tiled file are decoded one by one into the output, which alone holds the whole picture, as bytes.
    Tiles start at multiples of 16 pixels (bitstream/tiles.py), so reduced tiles start at whole pixels.
    """
    if len(parts) == 1:
        return synthesise(weights, parts[0][1](), reduce)
    out = None
    for (left, top, right, bottom), features in parts:
        pixels = synthesise(weights, features(), reduce)
        if out is None:
            width, height = reduced_size(header.width, header.height, reduce)
            out = pixels.new_empty(*pixels.shape[:2], height, width)
        (w, h), scale = reduced_size(right - left, bottom - top, reduce), 2 ** reduce
        out[..., top // scale:top // scale + h, left // scale:left // scale + w] = pixels[..., :h, :w]
    return out
