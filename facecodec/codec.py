"""The codec's one path for the data, batch-first, each step a named call::

    encode_many: images -> padded arrays (same-size images stacked) -> g_a (analyse) -> family.quantize
                 -> integer symbols -> family.entropy_encode -> container bytes, one .fcz file per image
    decode_many: .fcz bytes -> container (open_fcz) -> family.entropy_decode -> symbols -> family.dequantize
                 -> features (same-shape files stacked) -> g_s (synthesise) -> crop -> images
                 (``reduce``: the wavelet family decodes only the coarse levels, into a smaller image)

The data between the steps are numpy arrays; g_a and g_s are the weights' transform (facecodec.models.transform),
numpy and ONNX Runtime for the wavelet family, so the default weights never import torch, or a torch network
for the older families.

``encode`` and ``decode`` are the same path for one image; folder runs (facecodec.runner) call the ``_many``
functions on each chunk of files. How features become symbols, and symbols payload bytes, is asked of the
weights' family (facecodec.families), chosen once when the weights load.

Each file's bytes are those of its image coded alone: quantization and entropy coding are per image, the
wavelet transform is per image, and the networks' convolutions run on one kernel family whatever the batch
size and thread count (facecodec.numerics).

The networks (and the wavelet post-filter) run in overlapping tiles of ``NETWORK_TILE`` pixels
(facecodec.models.tiling), so memory stays bounded for large photos. The wavelet transform runs over the whole
image at once; its family then codes an image larger than its tile side as a grid of tiles, each analysed,
quantized, coded and decoded as an image of its own (``tile_boxes``, ``tiles``: formats 4 and 8, the latter
overlapping), so its memory too follows the tile and the picture is held whole only as 8-bit pixels.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
from PIL import Image

from facecodec.arrays import padded_array, to_image
from facecodec.batching import batches
from facecodec.bitstream import FczError, FczHeader, pack
from facecodec.bitstream.lattice import SourceLattice
from facecodec.bitstream.tiles import Box, coded_box
from facecodec.devices import known_device
from facecodec.families.base import Family
from facecodec import jpeg_file
from facecodec.image_io import DEFAULT_MAX_PIXELS, FczWarning, ImageInput, open_image
from facecodec.jpeg_lattice import SOURCE_KEY, best_strengths, snap
from facecodec.metadata import NO_METADATA, ORIGIN, Metadata, attach, from_image
from facecodec.models.transform import NETWORK_TILE
from facecodec.ratecontrol import SizeTarget, largest_fitting, size_target
from facecodec.reading import FczSource, check_decodable, fcz_bytes, read_header
from facecodec.zoo import Weights, choose, load_spec, load_weights, lossless_weights_id

Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class EncodeSettings:
    """An encode's settings, checked once against the weights (``encode_settings``); picklable for worker processes."""

    weights_id: str
    setting: int                       # the family's quality or bit depth
    effort: int                        # the encoder's search effort
    tile: int | None = None            # the coding tile side, for families that code large images in tiles
    target: SizeTarget | None = None   # a file size to fit instead of ``setting``
    strip: bool = False                # drop the input's ICC profile, EXIF and XMP instead of keeping them
    jpeg_source: bool = True           # let the decoder move onto a JPEG input's lattice where that pays
    keep_jpeg: str | None = None       # the weights that keep a JPEG input's own coefficients, if used
    rebuild_jpeg: str | None = None    # lossless: the weights that also code the pixels as a rebuilt JPEG, if used


def encode_settings(quality: int | None = None, bits: int | None = None, weights_id: str | None = None,
                    effort: int | None = None, size: int | None = None, bpp: float | None = None,
                    tile: int | None = None, strip: bool = False, lossless: bool = False,
                    jpeg_source: bool = True) -> EncodeSettings:
    """Check what an encode asks for against the weights it picks -> its settings, or FczError saying what is wrong.

    ``quality`` (1 = smallest file) or ``bits`` (the seed's per-image-range model, which it selects unless
    ``weights_id`` is given); ``effort``: how hard the encoder searches for smaller symbols at the same quality
    (None: the family's default); ``size`` (bytes) or ``bpp`` (bits per pixel of the whole file) instead of a
    quality: the best setting whose file is no larger; ``tile``: the side of the tiles a large image is coded in
    (the wavelet family; None: 1024); ``strip``: leave out the input's ICC profile, EXIF and XMP, which a file
    otherwise carries (format version 5) and ``decode`` gives back in the image's ``info``; ``lossless``: the
    lossless weights (facecodec.families.lossless), whose decode is exactly the pixels encoded; ``jpeg_source``:
    for a JPEG input, store its quantization lattice where moving the decode onto it brings the decode closer to the
    input than the block's bytes cost (facecodec.jpeg_lattice; untiled lossy files); with ``lossless``, keep a JPEG
    input's own quantized coefficients instead of coding its pixels, where they decode to exactly those pixels
    (facecodec.jpeg_file: a file about a fifth smaller than the JPEG, where the pixels take 3-5 times the JPEG);
    without, keep them too where that file is no larger than the lossy one (a JPEG coded at a high setting: the
    exact picture in fewer bytes).
    """
    if lossless and (size is not None or bpp is not None):
        raise FczError("a lossless file is as large as the pixels need: it takes no size or bpp target")
    spec, setting = choose(quality, bits, weights_id, lossless)
    keep_jpeg = None   # weights that keep a JPEG's coefficients: named, or the installed ones beside the others
    if jpeg_source and spec.family.keeps_jpeg_files:
        keep_jpeg = spec.weights_id
    elif jpeg_source and (not spec.family.lossless or weights_id is None):
        keep_jpeg = _jpeg_keeping_weights()
    # Lossless without named weights: the pixels are coded both ways, and the smaller file kept.
    rebuild_jpeg = _installed_lossless(rebuilt_jpeg=True) if lossless and weights_id is None else None
    return EncodeSettings(spec.weights_id, setting, spec.family.choose_effort(effort), spec.family.choose_tile(tile),
                          size_target(size, bpp, given=quality is not None or bits is not None), strip,
                          jpeg_source and not lossless, keep_jpeg, rebuild_jpeg)


def encode(image: ImageInput, quality: int | None = None, bits: int | None = None,
           weights_id: str | None = None, device: str = "auto",
           max_pixels: int | None = DEFAULT_MAX_PIXELS, effort: int | None = None,
           size: int | None = None, bpp: float | None = None, tile: int | None = None, strip: bool = False,
           lossless: bool = False, jpeg_source: bool = True) -> bytes:
    """Compress an image to the bytes of a .fcz file, with its ICC profile, EXIF and XMP unless ``strip``.

    ``image``: a PIL image, a uint8 array, the bytes of an image file, a path or a binary file object. Images of
    more than ``max_pixels`` pixels are refused (None: no limit). The settings are ``encode_settings``'s; FczError
    when one does not fit the weights, or when even the smallest file is larger than ``size`` / ``bpp`` asks.
    """
    return encode_with(encode_settings(quality, bits, weights_id, effort, size, bpp, tile, strip, lossless,
                                       jpeg_source), image, device, max_pixels)


def encode_with(settings: EncodeSettings, image: ImageInput, device: str = "auto",
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> bytes:
    """``encode`` with settings checked before (``encode_settings``): one image to the bytes of its .fcz file."""
    return _one(encode_many([open_image(image, max_pixels)], settings, device))


def encode_many(images: Sequence[tuple[Image.Image, str]], settings: EncodeSettings, device: str = "auto",
                batch_size: int = 1) -> list[bytes | Exception]:
    """RGB images, each with the mode to code (``open_image``'s pair) -> per image, in order, its .fcz bytes or the
    exception that stopped it alone (the others are still coded). Same-size images go through ``g_a``
    ``batch_size`` at a time (facecodec.batching); each file's bytes are those of its image coded alone. Each file
    carries its image's metadata (``info``: ICC profile, EXIF, XMP) unless the settings strip it."""
    weights = load_weights(settings.weights_id, known_device(device))
    outcomes: list[Any] = [None] * len(images)
    padded, kept = {}, {}
    metadata = [NO_METADATA if settings.strip else from_image(rgb) for rgb, _ in images]
    for i, (rgb, mode) in enumerate(images):
        kept_file = _kept_jpeg_fcz(settings, rgb, mode, metadata[i]) if weights.family.lossless else None
        if kept_file is not None:
            outcomes[i] = kept[i] = kept_file
            if rgb.width * rgb.height > SMALL_JPEG_PIXELS:
                continue
        boxes = weights.family.tile_boxes(*rgb.size, settings.tile)
        if boxes is None:
            padded[i] = padded_array(rgb, weights.stride)
        else:  # its tiles make their own tensors, one at a time
            outcomes[i] = _attempt(partial(tiled_fcz, weights, rgb, mode, boxes, settings, metadata[i]))
    for batch in batches(list(padded), key=lambda i: padded[i][0].shape, pixels=lambda i: padded[i][0][0, 0].size,
                         batch_size=batch_size):
        try:
            y = analyse(weights, np.concatenate([padded[i][0] for i in batch]))
        except Exception as exc:  # noqa: BLE001  (out of memory, say: the batch's images fail, the others go on)
            for i in batch:
                outcomes[i] = exc
            continue
        for k, i in enumerate(batch):
            rgb, mode = images[i]
            lattice = rgb.info[SOURCE_KEY].lattice if settings.jpeg_source and SOURCE_KEY in rgb.info else None
            source = None if lattice is None else (rgb, lattice)
            outcomes[i] = _attempt(partial(features_to_fcz, weights, y[k:k + 1], settings, rgb.size, mode,
                                           *padded[i][1:], metadata[i], source))
    for i, kept_file in kept.items():   # a small JPEG: its pixels were coded too, and the smaller file is kept
        if not isinstance(outcomes[i], bytes) or len(kept_file) <= len(outcomes[i]):
            outcomes[i] = kept_file
    if settings.rebuild_jpeg is not None:
        outcomes = _smaller_rebuilt(images, outcomes, settings, device, skip=kept)
    if not weights.family.lossless:
        for i, (rgb, mode) in enumerate(images):
            if isinstance(outcomes[i], bytes):
                outcomes[i] = _smaller_kept_jpeg(outcomes[i], weights.family, settings, rgb, mode, metadata[i])
    return outcomes


# Up to this many pixels a lossless JPEG input is coded from its pixels too, and the smaller file kept: Lepton's own
# header (its Huffman tables) takes 300-400 bytes, more than the pixel coder needs for a 24 x 24 face (596 bytes
# kept against 385 from the pixels), where from 32 x 32 RGB and 48 x 48 grey on the JPEG kept is the smaller.
SMALL_JPEG_PIXELS = 64 * 64


def _kept_jpeg_fcz(settings: EncodeSettings, rgb: Image.Image, mode: str, metadata: Metadata) -> bytes | None:
    """A lossless encode of a JPEG input: the .fcz bytes that keep the JPEG's own coefficients (facecodec.jpeg_file),
    or None where the settings do not ask for it, the input is no JPEG that decodes to ``rgb`` or Lepton cannot
    code it (the pixels are coded then)."""
    source = rgb.info.get(SOURCE_KEY)
    if settings.keep_jpeg is None or source is None or source.file is None:
        return None
    jpeg = jpeg_file.kept_jpeg(source.file, rgb)
    payload = None if jpeg is None else jpeg_file.compress(jpeg, *rgb.size)
    if payload is None:
        return None
    family = load_spec(settings.keep_jpeg).family
    header = FczHeader(weights_id=settings.keep_jpeg, width=rgb.width, height=rgb.height, mode=mode,
                       bits=family.symbol_bits(family.default), pad_right=0, pad_bottom=0,
                       latent_shape=(3, rgb.height, rgb.width), channel_ranges=(), quality=family.default,
                       metadata=metadata)
    if len(payload) > header.max_payload_length():   # more than the format allows a W x H file: code the pixels
        return None
    return pack(header, payload)


def _installed_lossless(jpeg_files: bool = False, rebuilt_jpeg: bool = False) -> str | None:
    """The installed lossless weights of that kind (``lossless_weights_id``), or None."""
    try:
        return lossless_weights_id(jpeg_files, rebuilt_jpeg)
    except FczError:
        return None


def _jpeg_keeping_weights() -> str | None:
    """The installed weights that keep a JPEG's own coefficients, or None."""
    return _installed_lossless(jpeg_files=True)


def _smaller_rebuilt(images: Sequence[tuple[Image.Image, str]], outcomes: list[Any], settings: EncodeSettings,
                     device: str, skip: dict[int, bytes]) -> list[Any]:
    """Lossless files of pixels -> each the smaller of it and the file of its pixels as a rebuilt JPEG
    (facecodec.jpeg_rebuild): a third to a fifth of the pixel coder's where the pixels were decoded from a JPEG,
    larger where they never were. ``skip``: images whose JPEG input was kept as it is."""
    rebuilt_settings = replace(settings, weights_id=settings.rebuild_jpeg, rebuild_jpeg=None, keep_jpeg=None,
                               tile=None)
    for i, image in enumerate(images):
        if i in skip or not isinstance(outcomes[i], bytes):
            continue
        rebuilt = encode_many([image], rebuilt_settings, device)[0]
        if isinstance(rebuilt, bytes) and len(rebuilt) < len(outcomes[i]):
            outcomes[i] = rebuilt
    return outcomes


# Lepton takes 10-25 % off a JPEG (12.8 % on LFW's, 21.8 % on faces/val's: docs/results.md, "Lossless"): a lossy file
# of less than half the JPEG's bytes is smaller than the JPEG kept, which then is not even made.
KEPT_JPEG_FRACTION = 0.5


def _smaller_kept_jpeg(lossy: bytes, family: Family, settings: EncodeSettings, rgb: Image.Image, mode: str,
                       metadata: Metadata) -> bytes:
    """A lossy file of a JPEG input, or the file keeping that JPEG's own coefficients where it is no larger (or, with
    a size target, fits it): then the decode is exactly the JPEG's pixels, in fewer bytes (a JPEG coded at a high
    setting). Said in a warning, as is a lossy file larger than its JPEG where the JPEG cannot be kept."""
    source = rgb.info.get(SOURCE_KEY)
    # With a size target, the kept JPEG may take all the target allows: it is the picture itself.
    room = len(lossy) if settings.target is None else max(len(lossy), settings.target.limit(*rgb.size))
    if source is None or not source.file_bytes or room < KEPT_JPEG_FRACTION * source.file_bytes:
        return lossy
    kept = _kept_jpeg_fcz(settings, rgb, mode, metadata)
    if kept is not None and len(kept) <= room:
        setting = family.describe(family.setting_of(read_header(lossy)))   # with a size target, the one chosen
        warnings.warn(f"{setting} gives {len(lossy):,} bytes; the JPEG's own coefficients, kept exactly, take "
                      f"{len(kept):,}: kept those (--no-jpeg-source codes the pixels)", FczWarning, stacklevel=4)
        return kept
    if len(lossy) > source.file_bytes:
        warnings.warn(f"the .fcz file ({len(lossy):,} bytes) is larger than the JPEG it was coded from "
                      f"({source.file_bytes:,} bytes), which holds this picture exactly: a lower quality or a size "
                      f"target of {source.file_bytes:,} bytes gives a smaller file", FczWarning, stacklevel=4)
    return lossy


def analyse(weights: Weights, x: np.ndarray, tile: int = NETWORK_TILE) -> np.ndarray:
    """g_a over padded images ``N x 3 x H x W`` (float32 in [0, 1]), networks in tiles of ``tile`` pixels -> float32
    features."""
    return weights.transform.analyse(x, tile)


def synthesise(weights: Weights, y: np.ndarray, reduce: int = 0, tile: int = NETWORK_TILE) -> np.ndarray:
    """g_s over dequantized features, networks in tiles of ``tile`` pixels -> padded images as uint8 pixels.

    Each tile is rounded to 8 bits as it leaves the network, so peak memory follows the tile, not the image: the
    whole picture is only ever held as bytes. ``reduce`` > 0 (only for families with ``max_reduce``): images
    1 / 2^reduce the size.
    """
    return weights.transform.synthesise(y, reduce, tile)


def tiled_fcz(weights: Weights, rgb: Image.Image, mode: str, boxes: list[Box], settings: EncodeSettings,
              metadata: Metadata = NO_METADATA) -> bytes:
    """An image coded as the grid of tiles ``boxes`` (formats 4 and 8) -> its .fcz bytes; each tile, with the overlap
    its family codes (bitstream/tiles.py), is analysed, quantized and coded as an image of its own, so the whole
    picture is held only as 8-bit pixels."""
    def coded(setting: int) -> bytes:
        headers, payloads = [], []
        for box in boxes:
            tile = rgb.crop(coded_box(box, weights.family.tile_overlap))
            x, pad_right, pad_bottom = padded_array(tile, weights.stride)
            symbols, fields = weights.family.quantize(weights.model, analyse(weights, x), setting,
                                                      settings.effort, weights.entropy_tables)
            header, payload = to_payload(weights, symbols[0], fields[0], tile.size, mode, pad_right, pad_bottom)
            headers.append(header)
            payloads.append(payload)
        header, payload = weights.family.join_tiles(headers, payloads, *rgb.size, settings.tile)
        return pack(replace(header, metadata=metadata), payload)

    return fitted(weights, coded, settings, rgb.size)


def features_to_fcz(weights: Weights, y: np.ndarray, settings: EncodeSettings, size: tuple[int, int], mode: str,
                    pad_right: int, pad_bottom: int, metadata: Metadata = NO_METADATA,
                    source: tuple[Image.Image, SourceLattice] | None = None) -> bytes:
    """One image's features ``1 x C x h x w`` -> its .fcz bytes; ``source``: the image and its JPEG lattice, which
    the file's JPEG source block gets where moving the decode onto it pays (facecodec.jpeg_lattice)."""
    def coded(setting: int) -> bytes:
        symbols, fields = weights.family.quantize(weights.model, y, setting, settings.effort, weights.entropy_tables)
        header, payload = to_payload(weights, symbols[0], fields[0], size, mode, pad_right, pad_bottom)
        if source is not None:
            header = replace(header, lattice=_lattice_for(weights, symbols[0], header, len(payload), *source))
        return pack(replace(header, metadata=metadata), payload)

    return fitted(weights, coded, settings, size)


def _lattice_for(weights: Weights, symbols: np.ndarray, header: FczHeader, payload_bytes: int, image: Image.Image,
                 lattice: SourceLattice) -> SourceLattice | None:
    """The strengths that bring the decode of ``symbols`` closest to ``image`` (the encoder decodes what the
    decoder will), or None where moving onto the lattice does not pay."""
    features = weights.family.dequantize(weights.model, symbols, header)
    decoded = np.asarray(to_image(synthesise(weights, features), header.width, header.height, header.mode))
    original = np.asarray(image.convert(header.mode) if header.mode != "RGB" else image)
    return best_strengths(lattice, original, decoded, payload_bytes)


def fitted(weights: Weights, coded: Callable[[int], bytes], settings: EncodeSettings, size: tuple[int, int]) -> bytes:
    """``coded(setting)`` at the settings' setting; with a size target, the highest of the weights' settings whose
    file fits (facecodec.ratecontrol), or FczError when even the smallest does not."""
    if settings.target is None:
        return coded(settings.setting)
    limit, family = settings.target.limit(*size), weights.family
    setting, data, over = largest_fitting(family.settings, coded, limit)
    if over:
        target = settings.target
        raise FczError(f"no {family.noun} fits in {target.describe(limit, *size)}: the smallest file "
                       f"({family.describe(setting)}) takes {target.describe(len(data), *size)}")
    return data


def to_payload(weights: Weights, symbols: np.ndarray, fields: dict, size: tuple[int, int], mode: str,
               pad_right: int, pad_bottom: int) -> tuple[FczHeader, bytes]:
    """One image's (or tile's) symbols ``C x h x w`` and header fields -> its header and entropy-coded payload."""
    header = FczHeader(weights_id=weights.weights_id, width=size[0], height=size[1], mode=mode,
                       pad_right=pad_right, pad_bottom=pad_bottom, latent_shape=symbols.shape, **fields)
    return header, weights.family.entropy_encode(symbols, weights.table(header), header)


def decode(data: FczSource, device: str = "auto", max_pixels: int | None = DEFAULT_MAX_PIXELS,
           reduce: int = 0) -> Image.Image:
    """Decompress a .fcz file to a PIL image (mode "RGB" or "L", as encoded), the metadata the file carries in its
    ``info`` (``icc_profile``, ``exif``, ``xmp``: as Pillow's readers put them, so ``image.save`` keeps them).

    ``data``: the file's bytes (or bytearray, memoryview), its path or a binary file object. Files claiming more
    than ``max_pixels`` pixels are refused before any decoding (None: no limit); peak memory then stays bounded by
    tiles and the output's bytes. ``reduce`` > 0 decodes an image ``1 / 2^reduce`` the size (each side rounded up)
    from the coarse levels alone, faster than a full decode: the wavelet family only (JPEG 2000's reduce).
    """
    return _one(decode_many([fcz_bytes(data)], device, max_pixels, reduce))


def decode_many(files: Sequence[bytes], device: str = "auto", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                reduce: int = 0, batch_size: int = 1) -> list[Image.Image | Exception]:
    """The bytes of .fcz files -> per file, in order, its image or the exception that stopped it alone. Files of
    the same weights and shape go through ``g_s`` ``batch_size`` at a time; a file coded in tiles goes alone."""
    device = known_device(device)
    outcomes: list[Any] = [None] * len(files)
    opened = {}
    for i, data in enumerate(files):
        try:
            header, weights, parts = open_fcz(data, device, max_pixels, reduce)
            if len(parts) > 1:
                outcomes[i] = _as_decoded(to_image(parts_to_pixels(weights, parts, header, reduce),
                                                   *reduced_size(header.width, header.height, reduce), header.mode),
                                          header, weights, reduce)
            else:
                opened[i] = header, weights, parts[0][1]()
        except Exception as exc:  # noqa: BLE001  (a damaged file fails alone)
            outcomes[i] = exc
    for batch in batches(list(opened), key=lambda i: (opened[i][1].weights_id, tuple(opened[i][2].shape)),
                         pixels=lambda i: opened[i][2][0, 0].size * opened[i][1].stride ** 2,
                         batch_size=batch_size):
        try:
            pixels = synthesise(opened[batch[0]][1], np.concatenate([opened[i][2] for i in batch]), reduce)
        except Exception as exc:  # noqa: BLE001
            for i in batch:
                outcomes[i] = exc
            continue
        for k, i in enumerate(batch):
            header = opened[i][0]
            outcomes[i] = _as_decoded(to_image(pixels[k:k + 1], *reduced_size(header.width, header.height, reduce),
                                               header.mode), header, opened[i][1], reduce)
    return outcomes


def _as_decoded(image: Image.Image, header: FczHeader, weights: Weights, reduce: int = 0) -> Image.Image:
    """A decoded image finished with what its file says besides the coded pixels: moved onto its JPEG source's
    lattice (full-size decodes; facecodec.jpeg_lattice), the metadata, and (lossy weights) where it came from, so
    that an output file can say so (facecodec.metadata.ORIGIN)."""
    if header.lattice and not reduce:
        image = Image.fromarray(snap(np.asarray(image), header.lattice))
    attach(image, header.metadata)
    if not weights.family.lossless:
        image.info[ORIGIN] = f"{header.weights_id}, {weights.family.describe(weights.family.setting_of(header))}"
    return image


def reduced_size(width: int, height: int, reduce: int) -> tuple[int, int]:
    """The size of an image decoded at 1 / 2^reduce: each side halved ``reduce`` times, rounded up."""
    return -(-width // 2 ** reduce), -(-height // 2 ** reduce)


# A coded part: its box in the image, what decodes its features, and the box of the image its decode fills (all of
# its box but in overlapping tiles: bitstream/tiles.py).
Part = tuple[Box, Callable[[], np.ndarray], Box]


def open_fcz(data: bytes, device: str = "auto", max_pixels: int | None = DEFAULT_MAX_PIXELS, reduce: int = 0
             ) -> tuple[FczHeader, Weights, list[Part]]:
    """The bytes of one .fcz file -> (header, weights, its coded parts).

    A part is the whole image, or one tile of a file coded in tiles; calling its function range-decodes and
    dequantizes it into the features ``g_s`` takes, so a tiled file's features exist one tile at a time.
    """
    header, payload, spec, table = check_decodable(data, max_pixels)
    reduce = spec.family.check_reduce(reduce, spec.weights_id)
    weights = load_weights(spec.weights_id, known_device(device))
    return header, weights, [(box, partial(part_features, weights, table, part, part_payload, reduce), kept)
                             for box, kept, part, part_payload in weights.family.tiles(header, payload)]


def part_features(weights: Weights, table: Any, header: FczHeader, payload: bytes, reduce: int = 0) -> np.ndarray:
    """One untiled payload (a whole file's, or a tile's) -> the features ``g_s`` takes."""
    symbols = weights.family.entropy_decode(payload, table, header, reduce)
    return weights.family.dequantize(weights.model, symbols, header)


def parts_to_pixels(weights: Weights, parts: list[Part], header: FczHeader, reduce: int = 0) -> np.ndarray:
    """A file's parts (``open_fcz``) -> its uint8 pixels ``1 x 3 x H' x W'``, 1 / 2^reduce of the size.

    A file of one part gives its pixels as ``synthesise`` makes them (padded to the stride); the tiles of a tiled
    file are decoded one by one into the output, which alone holds the whole picture, as bytes. Tiles start at
    multiples of 16 pixels (bitstream/tiles.py), so reduced tiles start at whole pixels; where overlapping tiles
    hand over halfway through their overlap, a reduced seam is rounded up, as the image's reduced sides are.
    """
    if len(parts) == 1:
        return synthesise(weights, parts[0][1](), reduce)
    out = None
    for (left, top, _, _), features, (keep_left, keep_top, keep_right, keep_bottom) in parts:
        pixels = synthesise(weights, features(), reduce)
        if out is None:
            width, height = reduced_size(header.width, header.height, reduce)
            out = np.empty((*pixels.shape[:2], height, width), dtype=pixels.dtype)
        (x0, y0), (x1, y1) = reduced_size(keep_left, keep_top, reduce), reduced_size(keep_right, keep_bottom, reduce)
        dx, dy = left >> reduce, top >> reduce   # the tile's own first pixel: a multiple of 16 reduces exactly
        out[..., y0:y1, x0:x1] = pixels[..., y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    return out


def _attempt(work: Callable[[], Outcome]) -> Outcome | Exception:
    """``work()``, or the exception it raised: one image's failure is its own."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001
        return exc


def _one(outcomes: list[Outcome | Exception]) -> Outcome:
    """The outcome of a one-image ``_many`` call: its result, or its exception raised."""
    if isinstance(outcomes[0], Exception):
        raise outcomes[0]
    return outcomes[0]
