"""Mutation fuzzing of ``facecodec.decode`` over a corpus of real .fcz files.

    nice -n 19 python benchmarks/fuzz/fuzz_decode.py --inputs 200000 [--seed S] [--seconds-per-input 2]

Property checked for every input: ``facecodec.decode(data, reduce=r)`` returns a PIL
image of the size and mode the header states (at ``r`` > 0: each side divided by
2^r, rounded up, and only from weights whose latent codec has that many levels:
the wavelet family's 4; every other family must refuse), or raises ``FczError``;
``read_header`` agrees with it; nothing else is raised, nothing runs past the time
bound, and memory does not grow. Most inputs are decoded at r = 0, a quarter at
r = 1..4 (now and then 5, which every family must refuse).

The corpus (``build_corpus``) covers every installed weights id
(``facecodec.zoo.installed_ids()``), each file coded by that weights' own latent
codec: the per-channel families (per-image ranges, quality levels) and the
wavelet family (context-adaptive payload; format 3 resolution-ordered, format 2
plane-ordered), real crops at every setting plus files of random symbols. Its files
are what facecodec writes: the compact header (format 7) for the weights in
``REGISTRY``, the long header (formats 2..6, a few rewritten as 1) for the others;
and each compact file has its long-header twin beside it (``pack(..., long_header=True)``:
the same header and payload in the layout facecodec wrote before format 7 and still
reads), so that both layouts are fuzzed. The layout-aware mutations read either.

Design:

* Input ``i`` is a pure function of ``(seed, i)``: a corpus file (or two, for
  splices) and a stack of mutations drawn from ``random.Random(f"{seed}:{i}")``.
  Any input can be regenerated from its index, so a worker that dies on an
  input costs nothing but a restart after it. So is its ``reduce``.
* Mutations work on the body (the file less its CRC-32): raw byte edits, and edits that
  know the header's fields in either layout (``layout``); most inputs are then
  re-sealed with a correct CRC so they get past the checksum and reach the
  header checks, the range decoder and the network.
* A worker process decodes; the supervisor (this process) watches it. The
  worker bounds each input's CPU time with a timer (``--seconds-per-input``; CPU,
  not wall-clock, time, because at nice 19 beside a training run a 10 ms decode
  can wait a second for the CPU) and its own
  address space with RLIMIT_AS; the supervisor kills a worker that stops
  making progress (a hang in native code the timer cannot interrupt) or whose
  RSS passes ``--max-rss-mb``, records the input, and restarts after it.
* Every failing input is saved under ``crashes/`` (a few per distinct failure)
  with a ``.txt`` giving the reason (and the ``reduce`` it was decoded at). Saved crashes are replayed at the start
  of every run, so the summary says which earlier failures are now fixed.
* ``summary.json`` and ``SUMMARY.md`` beside this file record the run.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.metadata
import io
import json
import math
import multiprocessing as mp
import os
import platform
import random
import resource
import shlex
import signal
import struct
import subprocess
import sys
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path

from facecodec.bitstream.container import (COMPACT_VERSION, COMPACT_VERSIONS, FLAG_GREYSCALE, FLAG_LATTICE,
                                           FLAG_METADATA, OVERLAP_VERSION,
                                           MAX_SIDE_BYTES, REGISTRY)

HERE = Path(__file__).resolve().parent
STAGES = ("magic", "version", "checksum", "header", "reduce", "payload", "decoded", "failed")
STAGE_NAMES = {
    "magic": "refused at magic bytes",
    "version": "refused at version / flags",
    "checksum": "refused at checksum",
    "header": "refused at header fields (incl. weights id, shape vs. weights, payload length, trailing bytes)",
    "reduce": "refused the reduced decode asked for (weights without levels, or reduce > 4)",
    "payload": "refused at payload decode (range decoder; the wavelet family's context decoder; Lepton and libjpeg)",
    "decoded": "decoded fully to an image",
    "failed": "broke the property (other exception, timeout, hang, crash, memory)",
}
# Shared counters between worker and supervisor: one per stage, then these.
SLOTS = STAGES + ("ready", "current", "rss_first_kb", "rss_last_kb", "rss_peak_kb", "maxrss_kb", "samples",
                  "reduced", "reduced_decoded")
# then one slot per weights id of the corpus: inputs decoded to an image with those weights
SLOT = {name: k for k, name in enumerate(SLOTS)}
RSS_SAMPLE_EVERY = 2000
MAX_SAVED_PER_FAILURE = 3
HANG_WALL_SECONDS = 600.0  # wall-clock; at nice 19 beside a training run even tiny inputs wait for the CPU
REDUCED_SHARE = 0.25  # of the inputs decoded at a reduce > 0 (facecodec.decode(data, reduce=r))
REDUCES = [1, 2, 3, 4] * 3 + [5]  # the wavelet family goes down to 4 levels; 5 must be refused by every family


# --------------------------------------------------------------------------- corpus

def build_corpus(seed: int) -> list[tuple[str, bytes]]:
    """Real .fcz files for every installed weights id (``facecodec.zoo.installed_ids()``), each coded by
    its own latent codec, nothing chosen by family name. Of every weights id that codes pixels
    (``pixel_codec_ids()``):

    * small crops of scikit-image's astronaut, RGB and greyscale, at every setting of the weights
      (``bits`` or ``quality``, whichever option their latent codec takes; 8 spread over them where there
      are more, as with a continuous quality 1..100) and a spread of sizes
      (1x1, a side of 1, odd sides, several latent positions), every encoder effort the codec has;
    * per weights id one file rewritten as format version 2 (``weights.family.entropy_encode`` with a
      version-2 header: the plane-ordered payload of the wavelet family, the same bytes for the
      per-channel families), and two range files rewritten as version 1 (no quality byte), still read;
    * per weights id files of random symbols valid for its family (``random_symbols``) at its first,
      middle and last setting, in RGB and L, one of them as version 2, so the payload decoder and the
      synthesis see content no encoder made (for the wavelet family: signed values, some far beyond
      +-31, so the escapes are exercised);
    * per weights id whose family codes large images in tiles, an 80 x 70 crop in RGB and L coded in
      64-pixel tiles (a tile table, then 2 x 2 tile payloads: flag 0x02 of format 7, format 4 in the long header;
      format 8, overlapping tiles, where the family's tiles overlap);
    * files with metadata of the default weights: a crop with an ICC profile, EXIF and XMP, and the tiled crop with
      EXIF (flags 0x01 and 0x03 of formats 7 and 5);
    * files with a JPEG source block of the default weights: a crop from a JPEG of quality 75 4:2:0 (standard
      tables, flag 0x04 of formats 7 and 6) and a greyscale one with tables of its own and EXIF (flags 0x05).

    Of every weights id that keeps a JPEG's own coefficients (``Family.keeps_jpeg_files``: Lepton's stream as the
    payload), lossless files of JPEG crops: baseline 4:2:0, 4:2:2 and 4:4:4, progressive, greyscale, with restart
    markers, at qualities 30-95 and a spread of sizes from 8 x 8 up, one with EXIF (a metadata block).

    Of every weights id that rebuilds a JPEG from pixels (``Family.rebuilds_jpeg``: a Lepton stream and an LZMA2
    residual as the payload), lossless files of the pixels of JPEG crops: 4:2:0, 4:2:2 and 4:4:4, RGB and greyscale,
    one with EXIF.

    Every file written with a compact header (format 7: the weights are in REGISTRY) comes with its long-header
    twin (``with_long_twins``); the labels say which is which.
    """
    from dataclasses import replace
    from unittest import mock

    import numpy as np
    from PIL import Image, ImageCms
    from skimage.data import astronaut

    import facecodec
    from facecodec.bitstream import FczHeader, pack, unpack
    from facecodec.zoo import installed_ids, load_spec, load_weights, pixel_codec_ids

    rng = np.random.default_rng(seed)
    picture = astronaut()
    sizes = [(16, 16), (40, 48), (64, 64), (9, 17), (33, 24), (8, 8), (1, 1), (57, 31), (31, 1), (3, 2)]  # (w, h)

    def crop(k: int, mode: str):
        width, height = sizes[k % len(sizes)]
        top, left = int(rng.integers(0, 200)), int(rng.integers(100, 300))
        return width, height, Image.fromarray(picture[top:top + height, left:left + width]).convert(mode)

    corpus: list[tuple[str, bytes]] = []
    for n, weights_id in enumerate(pixel_codec_ids()):
        weights = load_weights(weights_id)
        latent = weights.family
        efforts = list(latent.efforts)
        own: list[tuple[str, bytes]] = []
        for k, setting in enumerate(spread(latent.settings, 8)):
            for mode in ("RGB", "L"):
                width, height, image = crop(2 * k + (mode == "L") + 3 * n, mode)
                effort = efforts[(k + (mode == "L")) % len(efforts)]
                label = f"{latent.option}={setting}" + (f" effort={effort}" if len(efforts) > 1 else "")
                own.append((f"astronaut {width}x{height} {mode} {weights_id} {label}",
                            facecodec.encode(image, weights_id=weights_id, effort=effort,
                                             **{latent.option: setting})))
        corpus += own

        # the same content as format version 2, through the family's own codec (a file of at least 16 pixels a side
        # where there is one: weights with a single setting, the lossless ones, have only two files here)
        rgb = [(name, data) for name, data in own if unpack(data)[0].mode == "RGB"]
        name, data = next(((name, data) for name, data in rgb
                           if min(unpack(data)[0].width, unpack(data)[0].height) >= 16), rgb[0])
        header, payload = unpack(data)
        table = weights.table(header)
        symbols = latent.entropy_decode(payload, table, header)
        old = replace(header, version=2)
        corpus.append((f"{name} v2", pack(old, latent.entropy_encode(symbols, table, old))))

        # version 1 (no quality byte): only files with per-image ranges (quality byte 0) can be written so
        for name, data in own:
            header = unpack(data)[0]
            if header.quality == 0 and (header.bits, header.mode) in ((3, "L"), (8, "RGB")):
                shape = 7 + data[6]
                body = bytearray(data[:shape + 18] + data[shape + 19:-4])
                body[4] = 1
                corpus.append((f"{name} v1", bytes(body) + struct.pack("<I", zlib.crc32(body))))

        # a tiled payload (a tile table, then the tiles' payloads), where the family codes large images in tiles:
        # an 80 x 70 crop in 64-pixel tiles, the smallest the format allows, so 2 x 2 tiles
        if latent.tile_boxes(16384, 16384, latent.choose_tile(None)) is not None:
            for mode in ("RGB", "L"):
                image = Image.fromarray(picture[30:100, 170:250]).convert(mode)
                corpus.append((f"astronaut 80x70 {mode} {weights_id} in 64-px tiles",
                               facecodec.encode(image, weights_id=weights_id, tile=64)))
                if latent.tile_overlap:   # and as before tiles overlapped (format 7's flag 0x02, 4 in the long header)
                    with mock.patch.object(type(latent), "tile_overlap", 0):
                        corpus.append((f"astronaut 80x70 {mode} {weights_id} in 64-px tiles, not overlapping",
                                       facecodec.encode(image, weights_id=weights_id, tile=64)))

        # random symbols: the header fields come from the family's own quantizer (run on random features)
        settings = sorted({latent.settings[0], latent.settings[len(latent.settings) // 2], latent.settings[-1]})
        s = weights.stride
        side = max(6 * s, 48)  # up to 6 latent positions a side; stride 1 (wavelet): up to 48 pixels
        for k, setting in enumerate(settings):
            mode = "L" if k == 1 else "RGB"
            width, height = int(rng.integers(1, side + 1)), int(rng.integers(1, side + 1))
            h, w = -(-height // s), -(-width // s)
            features = rng.normal(scale=2.0, size=(1, weights.channels, h, w)).astype(np.float32)
            _, fields = latent.quantize(weights.model, features, setting, 0, weights.entropy_tables)
            version = 2 if k == len(settings) - 1 else 3
            header = FczHeader(weights_id=weights_id, width=width, height=height, mode=mode,
                               pad_right=w * s - width, pad_bottom=h * s - height,
                               latent_shape=(weights.channels, h, w), version=version, **fields[0])
            table = weights.table(header)
            symbols = random_symbols(rng, table, header)
            corpus.append((f"random symbols {weights_id} {width}x{height} {mode} {latent.option}={setting}"
                           + (" v2" if version == 2 else ""),
                           pack(header, latent.entropy_encode(symbols, table, header))))
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"
    small, large = Image.fromarray(picture[30:78, 170:210]), Image.fromarray(picture[30:100, 170:250])
    small.info.update(icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
                      exif=exif.tobytes(), xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    large.info.update(exif=exif.tobytes())
    corpus += [("astronaut 40x48 RGB with ICC, EXIF, XMP", facecodec.encode(small)),
               ("astronaut 80x70 RGB with EXIF in 64-px tiles", facecodec.encode(large, tile=64))]
    colour, grey = io.BytesIO(), io.BytesIO()
    Image.fromarray(picture[30:78, 170:210]).save(colour, "JPEG", quality=75, subsampling=2)
    Image.fromarray(picture[40:80, 180:216]).convert("L").save(grey, "JPEG", qtables=[list(range(3, 67))],
                                                               exif=exif.tobytes())
    corpus += [("astronaut 40x48 from a JPEG, standard tables", facecodec.encode(colour.getvalue(), quality=60)),
               ("astronaut 36x40 L from a JPEG, own tables, EXIF", facecodec.encode(grey.getvalue(), quality=60))]

    jpeg_options = [("4:2:0", {"subsampling": 2}), ("4:2:2", {"subsampling": 1}), ("4:4:4", {"subsampling": 0}),
                    ("progressive", {"progressive": True}), ("restarts", {"restart_marker_blocks": 1}),
                    ("EXIF", {"exif": exif.tobytes()})]
    for weights_id in installed_ids():
        if not load_spec(weights_id).family.keeps_jpeg_files:
            continue
        for k, (label, options) in enumerate(jpeg_options):
            for mode in ("RGB", "L"):
                width, height, image = crop(2 * k + (mode == "L"), mode)
                width, height = max(width, 8), max(height, 8)   # fewer pixels are coded from the pixels
                image = image.resize((width, height))
                quality = (30, 50, 75, 85, 95)[(2 * k + (mode == "L")) % 5]
                jpeg = io.BytesIO()
                image.save(jpeg, "JPEG", quality=quality, **options)
                data = facecodec.encode(jpeg.getvalue(), weights_id=weights_id, lossless=True)
                corpus.append((f"astronaut {width}x{height} {mode} JPEG q{quality} {label} {weights_id}", data))
    for weights_id in installed_ids():
        if not load_spec(weights_id).family.rebuilds_jpeg:
            continue
        for k, (label, options) in enumerate(jpeg_options[:3] + jpeg_options[5:]):
            for mode in ("RGB", "L"):
                width, height, image = crop(2 * k + (mode == "L"), mode)
                width, height = max(width, 24), max(height, 24)   # the Lepton stream outgrows a smaller picture's bound
                jpeg = io.BytesIO()
                image.resize((width, height)).save(jpeg, "JPEG", quality=(40, 75, 90)[k % 3], **options)
                decoded = Image.open(jpeg)
                decoded.info = {key: value for key, value in decoded.info.items() if key == "exif"}
                data = facecodec.encode(decoded, weights_id=weights_id, lossless=True)
                corpus.append((f"astronaut {width}x{height} {mode} pixels of a JPEG, {label}, {weights_id}", data))
    return with_long_twins(corpus)


def with_long_twins(corpus: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The corpus with each compact-header file (format 7) labelled so and followed by its long-header twin: the
    same header and payload in the long layout (labelled with its version), which facecodec wrote for these weights
    before format 7 and must go on reading safely."""
    from facecodec.bitstream import pack, unpack

    out = []
    for name, data in corpus:
        if data[4] == OVERLAP_VERSION:   # overlapping tiles came after the long header: no twin
            out.append((f"{name} (v8)", data))
        elif data[4] == COMPACT_VERSION:
            twin = pack(*unpack(data), long_header=True)
            out += [(f"{name} (v7)", data), (f"{name} (long header, v{twin[4]})", twin)]
        else:
            out.append((name, data))
    return out


def spread(settings: range, most: int) -> list[int]:
    """Every setting, or where there are more than ``most`` (a continuous quality 1..100) ``most`` of them evenly
    spread from the first to the last."""
    if len(settings) <= most:
        return list(settings)
    return sorted({settings[round(k * (len(settings) - 1) / (most - 1))] for k in range(most)})


def random_symbols(rng, model, header) -> "np.ndarray":
    """Random symbols ``C x h x w`` that ``model`` (what ``weights.table(header)`` gave) can code.

    Chosen by the kind of entropy model, not by family name: a per-channel count table
    (``C x alphabet``: the ranges and gained families, and any new family coded the same way) takes any
    integer of ``0 .. alphabet - 1``; the wavelet family's context model takes signed integers: here
    mostly within +-31 (one letter each; half of them the likely -3..3), 6% escapes of Exp-Golomb
    classes 0..18 (|v| = 31 + 2^k + t, up to about 2^19, so LL residuals stay within the format's
    range), and only the Y plane of a greyscale image (its other planes are not coded, so must be 0).
    """
    import numpy as np

    from facecodec.bitstream.contexts import ContextModel
    from facecodec.bitstream.subbands import channels_coded
    from facecodec.bitstream.wavelet_payload import DIRECT

    shape = header.latent_shape
    if isinstance(model, np.ndarray):
        return rng.integers(0, model.shape[-1], size=shape)
    if isinstance(model, ContextModel):
        values = rng.integers(-DIRECT, DIRECT + 1, size=shape)
        small = rng.random(shape) < 0.5
        values[small] = rng.integers(-3, 4, size=int(small.sum()))
        escapes = rng.random(shape) < 0.06
        classes = rng.integers(0, 19, size=int(escapes.sum()))
        magnitude = DIRECT + 2 ** classes + rng.integers(0, 2 ** classes)
        values[escapes] = np.where(rng.random(len(magnitude)) < 0.5, -magnitude, magnitude)
        values[channels_coded(header.mode):] = 0
        return values.astype(np.int32)
    raise NotImplementedError(f"benchmarks/fuzz/fuzz_decode.py: no random-symbol generator for entropy models of type "
                              f"{type(model).__name__} (weights {header.weights_id!r}); add one to random_symbols")


# --------------------------------------------------------------------------- mutations

def layout(body: bytes) -> dict | None:
    """Field offsets of a (possibly damaged) body, read the way bitstream/container.py reads them; None if
    too short. Either layout gives "version", "quality" and "quality_at" (None where the file has no quality
    byte), "payload" (where the payload starts, after the metadata and JPEG source blocks that the flags
    announce) and "end" (where the header says it ends).

    Version 7, the compact header: the image sides ("width", "height") and where their varints lie
    ("width_at", "height_at", "sides_end"); no length field ("length" None): the payload runs
    to the end of the body.

    The long header: version 2 on, a quality byte follows the 18-byte shape block, and the quantizer ranges
    (8 bytes a channel) follow it only when it is 0. Version 1 (or anything below 2): no quality byte,
    ranges always. "length": the payload length field, after the blocks."""
    if len(body) < 7:
        return None
    version, flags = body[4], body[5]
    if version in COMPACT_VERSIONS:
        width = _read_side(body, 7)
        height = _read_side(body, width[1]) if width else None
        if height is None or height[1] >= len(body):
            return None
        quality_at = height[1]
        payload = _after_blocks(body, quality_at + 1, flags)
        if payload is None:
            return None
        return {"version": version, "width": width[0], "height": height[0], "width_at": 7,
                "height_at": width[1], "sides_end": quality_at, "quality": body[quality_at], "quality_at": quality_at,
                "length": None, "payload": payload, "end": len(body)}
    shape = 7 + body[6]
    if len(body) < shape + 18:
        return None
    channels = struct.unpack_from("<H", body, shape + 12)[0]
    if version >= 2:
        if len(body) < shape + 19:
            return None
        quality, ranges_at = body[shape + 18], shape + 19
    else:
        quality, ranges_at = None, shape + 18
    range_count = 0 if quality else channels
    length_at = _after_blocks(body, ranges_at + 8 * range_count, flags)
    if length_at is None or len(body) < length_at + 4:
        return None
    payload_length = struct.unpack_from("<I", body, length_at)[0]
    return {"version": version, "shape": shape, "channels": channels, "quality": quality,
            "quality_at": shape + 18 if quality is not None else None, "ranges": ranges_at,
            "range_count": range_count, "length": length_at, "payload": length_at + 4,
            "end": length_at + 4 + payload_length, "payload_length": payload_length}


def _read_side(body: bytes, at: int) -> tuple[int, int] | None:
    """The image side whose varint starts at ``at`` (version 7) and where it ends, read as the container reads it
    (at most MAX_SIDE_BYTES bytes); None where it does not end in time."""
    value = 0
    for k, byte in enumerate(body[at:at + MAX_SIDE_BYTES]):
        value |= (byte & 0x7F) << (7 * k)
        if byte < 0x80:
            return value, at + k + 1
    return None


def _after_blocks(body: bytes, at: int, flags: int) -> int | None:
    """Where the metadata block (flag 0x01) and the JPEG source block (flag 0x04) that ``flags`` announce end, if
    they start at ``at``; None where they run past the body. Only the lengths they state are read, not checked, so a
    damaged block is skipped as far as the container would read it."""
    if flags & FLAG_METADATA:
        if at >= len(body):
            return None
        count, at = body[at], at + 1
        for _ in range(count):   # kind, length E, E bytes
            if at + 5 > len(body):
                return None
            at += 5 + struct.unpack_from("<I", body, at + 1)[0]
    if flags & FLAG_LATTICE:     # subsampling, strengths, form, then a quality (form 0) or 64 steps a table
        if at + 3 > len(body):
            return None
        at += 3 + (1 if body[at + 2] == 0 else 64 * (2 if body[at] else 1))
    return at if at <= len(body) else None


def leb128(value: int, size: int | None = None) -> bytes:
    """``value`` as a LEB128 varint in ``size`` bytes: by default the fewest, the one spelling version 7 takes;
    more gives a spelling with needless zero groups (1 as 0x81 0x00), fewer drops the high bits."""
    size = size or max(1, -(-value.bit_length() // 7))
    return bytes((value >> 7 * k) & 0x7F | (0x80 if k < size - 1 else 0) for k in range(size))


# name -> (offset from the shape block, struct format); negative offsets are from the file start. Long header only.
FIELDS = {
    "version": (-4, "<B"), "flags": (-5, "<B"), "id_length": (-6, "<B"),
    "width": (0, "<I"), "height": (4, "<I"), "mode": (8, "<B"), "bits": (9, "<B"),
    "pad_right": (10, "<B"), "pad_bottom": (11, "<B"), "channels": (12, "<H"), "latent_h": (14, "<H"),
    "latent_w": (16, "<H"), "quality": (18, "<B"),  # the quality byte: version 2 on (in version 1, a range byte)
}
COMPACT_FIELDS = ("version", "flags", "number", "width", "height", "quality")   # version 7's
# 1..8 read (4..6 only with their flags, 7 and 8 in their own layout, 8 only tiled); 0 refused (too old), 9 and 255
# refused (newer)
VERSIONS = [1, 2, 3, 1, 2, 3, 4, 5, 6, 7, 7, 8, 0, 9, 255]
# version 7's registry byte: each registered weights (a file then names others than its own, whose tables
# read its payload), then 0, the first number not yet given out and 255, refused ("upgrade facecodec")
NUMBERS = [*range(1, len(REGISTRY) + 1), 0, len(REGISTRY) + 1, 255]
# version 7's flags: the four defined bits in every combination (tiles with a JPEG source block refused), bits no
# version defines (refused)
COMPACT_FLAGS = [*range(16), 0x10, 0x80, 0xFF]
# 0 = ranges follow (version 7: refused); 1..8 the levels (gained, wavelet), 1..100 a continuous quality
# (wavelet); beyond
QUALITIES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 50, 99, 100, 101, 127, 255]
INTERESTING = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 25, 127, 128, 255, 256, 1023, 1024, 1025, 2047, 2048,
               2**15, 2**16 - 1, 2**16, 16383, 16384, 16385, 2**31 - 1, 2**31, 2**32 - 1]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, math.nan, math.inf, -math.inf, 3e38, -3e38, 2.99e38, -2.99e38, 3.4e38,
          1e-45, -1e-45, 1e-38, 1e30, -1e30, 65504.0, 1e6]


def _put(body: bytearray, at: int, fmt: str, value) -> None:
    size = struct.calcsize(fmt)
    if 0 <= at and at + size <= len(body):
        if fmt[-1] in "BHI":
            value = int(value) % (1 << (8 * size))
        struct.pack_into(fmt, body, at, value)


def _int_value(rng: random.Random, old: int) -> int:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(INTERESTING)
    if roll < 0.8:
        return old + rng.choice([-8, -2, -1, 1, 2, 8])
    return rng.getrandbits(rng.choice([8, 16, 32]))


def _with_payload(body: bytearray, lay: dict, payload: bytes) -> bytearray:
    """The header of ``body`` (``lay``: its layout) with ``payload`` after it; a long header's length field says
    its length (version 7 has none: the payload runs to the checksum)."""
    if lay["length"] is None:
        return body[:lay["payload"]] + payload
    return body[:lay["length"]] + struct.pack("<I", len(payload)) + payload


def m_flip_bits(rng, body, corpus):
    for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
        if body:
            at = rng.randrange(min(len(body), 64)) if rng.random() < 0.5 else rng.randrange(len(body))
            body[at] ^= 1 << rng.randrange(8)
    return body


def m_set_bytes(rng, body, corpus):
    for _ in range(rng.choice([1, 1, 2, 4])):
        if body:
            body[rng.randrange(len(body))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    return body


def m_truncate(rng, body, corpus):
    return body[:rng.randrange(len(body) + 1)]


def m_extend(rng, body, corpus):
    return body + rng.randbytes(rng.choice([1, 3, 4, 8, 64]))


def m_insert(rng, body, corpus):
    at = rng.randrange(len(body) + 1)
    return body[:at] + rng.randbytes(rng.choice([1, 2, 4, 16])) + body[at:]


def m_delete(rng, body, corpus):
    at = rng.randrange(len(body) + 1)
    return body[:at] + body[at + rng.choice([1, 2, 4, 16]):]


def m_duplicate(rng, body, corpus):
    if not body:
        return body
    start = rng.randrange(len(body))
    chunk = body[start:start + rng.choice([1, 4, 8, 32])]
    at = rng.randrange(len(body) + 1)
    return body[:at] + chunk + body[at:]


def m_field(rng, body, corpus):
    """Set one header field to an interesting value (the CRC is fixed afterwards)."""
    lay = layout(body)
    if lay is None:
        return m_flip_bits(rng, body, corpus)
    if lay["version"] in COMPACT_VERSIONS:
        return _compact_field(rng, body, lay)
    roll = rng.random()
    if roll < 0.6:
        name = rng.choice(list(FIELDS))
        offset, fmt = FIELDS[name]
        at = -offset if offset < 0 else lay["shape"] + offset
        old = struct.unpack_from(fmt, body, at)[0]
        if name == "version" and rng.random() < 0.8:
            value = rng.choice(VERSIONS)
        elif name == "quality" and rng.random() < 0.7:
            value = rng.choice(QUALITIES)
        else:
            value = _int_value(rng, old)
        _put(body, at, fmt, value)
    elif roll < 0.85 and lay["range_count"]:
        at = lay["ranges"] + 4 * rng.randrange(2 * min(lay["range_count"], 64))
        if at + 4 <= len(body):
            old = struct.unpack_from("<f", body, at)[0]
            value = rng.choice(FLOATS + [-old, old * 2, old + 1e-3, rng.gauss(0, 10)])
            if math.isfinite(value) and abs(value) > 3.4e38:  # not representable as a finite float32
                value = math.copysign(3.4e38, value)
            _put(body, at, "<f", value)
    elif roll < 0.95:
        _put(body, lay["length"], "<I", _int_value(rng, lay["payload_length"]))
    else:  # another weights id: an installed one, well-formed but unknown (or not a codec's), or malformed
        # (every installed id has a long-header file: the compact ones' twins)
        installed = sorted({bytes(data[7:7 + data[6]]) for _, data in corpus if data[4] not in COMPACT_VERSIONS})
        new_id = rng.choice(installed + [b"theis-c24-v2", b"gained-q8-v2", b"wavelet-v9", b"restore-tiramisu-v1",
                                         b"x", b"Theis", b"a" * 64, b"a" * 65, b"", b"-bad"])
        body = body[:6] + bytes([len(new_id) % 256]) + new_id + body[7 + body[6]:]
    return body


def _compact_field(rng: random.Random, body: bytearray, lay: dict) -> bytearray:
    """m_field for version 7: the version byte, the flags (mostly one bit toggled), the registry number, a side's
    varint or the quality byte."""
    name = rng.choice(COMPACT_FIELDS)
    if name == "version":
        body[4] = rng.choice(VERSIONS)
    elif name == "flags" and rng.random() < 0.6:
        body[5] ^= 1 << rng.choice([0, 1, 2, 3, 0, 1, 2, 3, 4, 7])
    elif name == "flags":
        body[5] = rng.choice(COMPACT_FLAGS)
    elif name == "number":
        body[6] = rng.choice(NUMBERS)
    elif name == "quality":
        body[lay["quality_at"]] = rng.choice(QUALITIES)
    else:
        start, end = (lay["width_at"], lay["height_at"]) if name == "width" else (lay["height_at"], lay["sides_end"])
        body[start:end] = _side_spelling(rng, lay[name])
    return body


def _side_spelling(rng: random.Random, old: int) -> bytes:
    """A varint for an image side (version 7): another value (1..16384 read; 0 and 16385 on refused) in its one
    valid spelling, or one the container refuses: with a needless zero group (1 as 0x81 0x00), 4 bytes long, or
    random bytes (unterminated, running into the quality byte)."""
    value = _int_value(rng, old) % 2**32
    roll = rng.random()
    if roll < 0.6:
        return leb128(value)
    if roll < 0.8:
        return leb128(value, len(leb128(value)) + rng.choice([1, 1, 2]))
    if roll < 0.9:
        return leb128(value, 4)
    return rng.randbytes(rng.randint(1, 4))


def m_resize(rng, body, corpus):
    """Give the header a different image size that still tiles the latent grid consistently (mostly with
    the file's own stride: 8 for the per-image-range model, 16 for the gained one, 1 for the wavelet family).
    Version 7 implies the latent grid from the sides; the payload is cut to the bound the new size sets on it, so
    that the file stays plausible."""
    lay = layout(body)
    if lay is None:
        return body
    roll = rng.random()
    cap = 96 if roll < 0.9 else (4096 if roll < 0.97 else 16384)  # now and then a huge image from a tiny file
    width, height = rng.randint(1, cap), rng.randint(1, cap)
    if lay["version"] in COMPACT_VERSIONS:
        sides = leb128(width) + leb128(height)
        body[lay["width_at"]:lay["sides_end"]] = sides
        payload = lay["payload"] + len(sides) - (lay["sides_end"] - lay["width_at"])
        return body[:payload + 4 * 3 * width * height + 64]
    shape = lay["shape"]
    latent_w = struct.unpack_from("<H", body, shape + 16)[0]
    own = (struct.unpack_from("<I", body, shape)[0] + body[shape + 10]) // latent_w if latent_w else 8
    stride = rng.choice([own if own in (1, 8, 16) else 8] * 8 + [8, 16, 4, 1, 32])
    h, w = -(-height // stride), -(-width // stride)
    _put(body, lay["shape"], "<I", width)
    _put(body, lay["shape"] + 4, "<I", height)
    _put(body, lay["shape"] + 10, "<B", w * stride - width)
    _put(body, lay["shape"] + 11, "<B", h * stride - height)
    _put(body, lay["shape"] + 14, "<H", h)
    _put(body, lay["shape"] + 16, "<H", w)
    return body


def m_bits(rng, body, corpus):
    """The quantizer bits; version 7 takes them from the registry entry, so there another registry number."""
    lay = layout(body)
    if lay is None:
        return body
    if lay["version"] in COMPACT_VERSIONS:
        body[6] = rng.choice(NUMBERS)
    else:
        _put(body, lay["shape"] + 9, "<B", rng.randint(1, 8))
    return body


def m_quality(rng, body, corpus):
    """Change the quality byte (version 2 on). Half the time keep the long layout consistent with it: drop the
    quantizer ranges when a range file gets a quality level, add plausible ranges when a quality-level
    file gets 0; so the header checks and the weights' tables, not the length field, have to refuse it.
    (Version 7 has no ranges: there 0 is refused as it stands.)"""
    lay = layout(body)
    if lay is None or lay["quality"] is None:
        return body
    old, new = lay["quality"], rng.choice(QUALITIES)
    body[lay["quality_at"]] = new
    if rng.random() < 0.5 and lay["version"] not in COMPACT_VERSIONS:
        if old == 0 and new:
            del body[lay["ranges"]:lay["ranges"] + 8 * lay["range_count"]]
        elif old and new == 0:
            pairs = [(-1.0, 1.0) if rng.random() < 0.5 else tuple(sorted((rng.gauss(0, 3), rng.gauss(0, 3))))
                     for _ in range(min(lay["channels"], 4096))]
            body[lay["ranges"]:lay["ranges"]] = b"".join(struct.pack("<ff", lo, hi) for lo, hi in pairs)
    return body


def m_version(rng, body, corpus):
    """Set the version byte (mostly 1..3, or 7; now and then 0, 4..6, 8 or 255): a long header's bytes then read in
    the compact layout, or a compact header's in the long one. Half the time a long header's layout is converted
    to match: version 2 -> 1 drops the quality byte (a range file then reads exactly as before), version 1 -> 2
    inserts one (0, so the ranges still follow, or a quality level)."""
    lay = layout(body)
    if lay is None:
        return body
    new = rng.choice(VERSIONS)
    body[4] = new
    if rng.random() < 0.5 and lay["version"] not in COMPACT_VERSIONS and new not in COMPACT_VERSIONS:
        if lay["quality"] is not None and new < 2:
            del body[lay["quality_at"]]
        elif lay["quality"] is None and new >= 2:
            body.insert(lay["shape"] + 18, rng.choice([0, 0, 0] + QUALITIES))
    return body


def m_mode(rng, body, corpus):
    """The colour mode: the long header's mode byte (0 RGB, 1 L), version 7's greyscale flag."""
    lay = layout(body)
    if lay is None:
        return body
    if lay["version"] in COMPACT_VERSIONS:
        body[5] ^= FLAG_GREYSCALE
    else:
        _put(body, lay["shape"] + 8, "<B", rng.choice([0, 1]))
    return body


def _payload_span(body) -> tuple[int, int] | None:
    lay = layout(body)
    if lay is None or lay["payload"] >= len(body):
        return None
    return lay["payload"], min(len(body), lay["end"])


def m_payload(rng, body, corpus):
    """Corrupt the entropy-coded payload only: the header stays valid, so the range decoder sees it."""
    span = _payload_span(body)
    if span is None:
        return body
    start, end = span
    if end <= start:
        return body
    roll = rng.random()
    if roll < 0.4:
        for _ in range(rng.choice([1, 1, 2, 4, 16])):
            body[rng.randrange(start, end)] ^= 1 << rng.randrange(8)
    elif roll < 0.6:
        at = rng.randrange(start, end)
        body[at:at + 4] = rng.randbytes(len(body[at:at + 4]))
    elif roll < 0.75:
        at = rng.randrange(start, end)
        run = min(end - at, rng.choice([4, 16, 64, 1 << 20]))
        body[at:at + run] = bytes([rng.choice([0, 0xFF])]) * run
    elif roll < 0.9:
        body[start:end] = rng.randbytes(end - start)
    else:  # swap two words
        words = (end - start) // 4
        if words >= 2:
            a, b = (start + 4 * k for k in rng.sample(range(words), 2))
            body[a:a + 4], body[b:b + 4] = body[b:b + 4], body[a:a + 4]
    return body


def m_payload_length(rng, body, corpus):
    """Drop or add whole words of payload and keep the length field consistent with them (version 7 has none: the
    words come and go before the checksum)."""
    lay = layout(body)
    if lay is None or lay["payload"] > len(body):
        return body
    payload = body[lay["payload"]:]
    words = len(payload) // 4
    roll = rng.random()
    if roll < 0.4:
        payload = payload[:4 * rng.randrange(words + 1)]           # shorter, possibly empty
    elif roll < 0.6:
        payload = payload[4 * rng.randrange(words + 1):]           # lose the front
    elif roll < 0.8:
        payload = payload + rng.randbytes(4 * rng.choice([1, 2, 16]))
    else:
        payload = payload + bytes(4 * rng.choice([1, 2, 16]))
    return _with_payload(body, lay, payload)


def m_splice(rng, body, corpus):
    """Head of this file + tail of another: raw cut points, or one file's header with another's payload (either
    layout with either: the corpus holds both)."""
    other = bytearray(rng.choice(corpus)[1][:-4])
    if rng.random() < 0.5:
        return body[:rng.randrange(len(body) + 1)] + other[rng.randrange(len(other) + 1):]
    lay, other_lay = layout(body), layout(other)
    if lay is None or other_lay is None:
        return body
    return _with_payload(body, lay, other[other_lay["payload"]:])


MUTATIONS = [  # (weight, mutator)
    (8, m_flip_bits), (5, m_set_bytes), (3, m_truncate), (2, m_extend), (2, m_insert), (2, m_delete),
    (1, m_duplicate), (10, m_field), (6, m_resize), (3, m_bits), (2, m_quality), (1, m_version), (1, m_mode),
    (14, m_payload), (5, m_payload_length), (4, m_splice),
]


def make_input(seed: int, index: int, corpus: list[tuple[str, bytes]]) -> tuple[bytes, list[str], int]:
    """The ``index``-th fuzz input of this seed, the names of what was done to it, and the ``reduce`` to
    decode it at (0 for most; ``REDUCED_SHARE`` of them one of ``REDUCES``)."""
    rng = random.Random(f"{seed}:{index}")
    name, data = rng.choice(corpus)
    body = bytearray(data[:-4])
    steps = [name]
    weights, mutators = zip(*MUTATIONS)
    for _ in range(1 + min(int(rng.expovariate(0.8)), 7)):
        mutator = rng.choices(mutators, weights)[0]
        body = bytearray(mutator(rng, body, corpus))
        steps.append(mutator.__name__[2:])
    roll = rng.random()
    if roll < 0.85:
        out, steps = bytes(body) + struct.pack("<I", zlib.crc32(body)), steps + ["resealed"]
    elif roll < 0.95:
        out, steps = bytes(body) + data[-4:], steps + ["original crc"]
    else:
        out, steps = bytes(body) + rng.randbytes(rng.randrange(5)), steps + ["random tail"]
    if rng.random() < 0.03:
        out, steps = out[:rng.randrange(len(out) + 1)], steps + ["raw truncate"]
    reduce = rng.choice(REDUCES) if rng.random() < REDUCED_SHARE else 0
    if reduce:
        steps.append(f"decoded at reduce={reduce}")
    return out, steps, reduce


# --------------------------------------------------------------------------- the worker

class InputTimeout(BaseException):
    """Raised by the per-input timer; a BaseException so no ``except Exception`` in the codec swallows it."""


def _on_timer(signum, frame):
    raise InputTimeout()


def rss_kb() -> int:
    """This process's resident memory, once glibc has handed its free heap back (``malloc_trim``), so that samples
    count memory in use: untrimmed, they grew 64-100 MB a run while what tracemalloc traced stayed at 24-33 MB and
    the trimmed RSS held at 420-438 MB over 10,000 inputs (2026-12-06): the allocator keeping freed pages, not a
    leak. Elsewhere (no glibc) the samples count the free heap too."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def classify(error: BaseException) -> str:
    """Which stage refused the input, from the frame that raised the FczError."""
    frames = traceback.extract_tb(error.__traceback__)
    # the reader's take() raises for every short read; the stage is that of the function reading the field
    where = next((f for f in reversed(frames) if f.name != "take" and
                  ("/facecodec/" in f.filename or "/bitstream/" in f.filename)), None)
    function, message = (where.name if where else ""), str(error)
    if function in ("unpack", "_read_prefix", "_read_fields", "read_block"):   # the container (bitstream/container.py)
        if "magic" in message or "empty file" in message:
            return "magic"
        if message.startswith("corrupt file: version") or "newer than this facecodec" in message:
            return "version"
        if "checksum" in message:
            return "checksum"
        return "header"
    if function == "check_reduce":
        return "reduce"
    if function == "decode_symbols" or (where.filename.endswith(f"bitstream{os.sep}wavelet_payload.py")
                                        and function != "check_payload_length"):
        return "payload"  # the per-channel range decoder, or the wavelet family's (decode_planes, _ll_band)
    if where.filename.endswith(f"facecodec{os.sep}jpeg_file.py"):
        return "payload"  # the jpeg-file family's: padding, Lepton's header and stream, the JPEG inside
    return "header"  # validate, weights lookup, shape vs. weights, payload too short for its symbols


def location(error: BaseException) -> str:
    """The innermost frame in the codec's own code (else anywhere but this harness), as file:line in function."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != __file__]
    ours = [f for f in frames if "/facecodec/" in f.filename or "/bitstream/" in f.filename]
    where = (ours or frames or [None])[-1]
    return f"{Path(where.filename).name}:{where.lineno} in {where.name}" if where else "?"


def signature(error: BaseException) -> str:
    """Exception type and where our code raised or called it: what makes two failures the same."""
    return f"{type(error).__module__}.{type(error).__qualname__} at {location(error)}"


def check(data: bytes, seconds: float, reduce: int = 0) -> tuple[str | None, dict | None, str | None]:
    """Decode one input at ``reduce`` -> (stage reached, failure or None, weights id of a decoded image or None).

    With ``reduce`` > 0 the image must be ``ceil(W / 2^reduce) x ceil(H / 2^reduce)``, and only weights
    whose latent codec can reduce that far (``max_reduce``: the wavelet family's 4) may give one; the
    others must raise FczError.
    """
    import facecodec
    from facecodec import FczError
    from facecodec.codec import reduced_size
    from facecodec.zoo import load_spec
    from PIL import Image

    stage, failure, decoded_with = None, None, None
    started, started_cpu = time.perf_counter(), time.process_time()
    signal.setitimer(signal.ITIMER_PROF, seconds)  # CPU time of this process; SIGPROF when it runs out
    try:
        try:
            image = facecodec.decode(data, device="cpu", reduce=reduce)
        except FczError as exc:
            stage, image = classify(exc), None
        try:
            header = facecodec.read_header(data)
        except FczError:
            header = None
        if image is not None:
            stage = "decoded"
            decoded_with = header.weights_id if header else None
            expected = (*reduced_size(header.width, header.height, reduce), header.mode) if header else None
            if not isinstance(image, Image.Image) or (image.width, image.height, image.mode) != expected:
                got = (image.width, image.height, image.mode) if isinstance(image, Image.Image) else type(image)
                failure = {"kind": "wrong result", "signature": "decode result disagrees with header",
                           "detail": f"decode at reduce={reduce} gave {got}, read_header says {expected}"}
            elif reduce > load_spec(header.weights_id).family.max_reduce:
                failure = {"kind": "wrong result", "signature": "decoded at a reduce its weights do not have",
                           "detail": f"weights {header.weights_id!r} decoded at reduce={reduce}"}
    except InputTimeout as exc:
        failure = {"kind": "timeout", "signature": f"over {seconds:g} s per input, stopped at {location(exc)}",
                   "detail": f"interrupted after {time.process_time() - started_cpu:.2f} s CPU"}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # anything but FczError breaks the property (incl. pyo3 PanicException)
        failure = {"kind": "exception", "signature": signature(exc), "detail": traceback.format_exc(limit=-6)}
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    elapsed, wall = time.process_time() - started_cpu, time.perf_counter() - started
    if failure is None and elapsed > seconds:  # a native call the timer could not interrupt, then finished
        failure = {"kind": "slow", "signature": f"over {seconds:g} s per input",
                   "detail": f"took {elapsed:.2f} s CPU"}
    if failure is not None:
        failure["seconds"] = f"{elapsed:.3f} CPU, {wall:.3f} wall"
        failure["reduce"] = reduce
    return (stage if failure is None else "failed"), failure, (decoded_with if failure is None else None)


def setup_worker(corpus, address_space_mb) -> None:
    """One torch thread, weights loaded, the unmutated corpus decoding, then the address-space limit and timer."""
    import torch

    torch.set_num_threads(1)
    import facecodec

    from facecodec.codec import reduced_size
    from facecodec.zoo import load_spec

    for name, data in corpus:
        header = facecodec.read_header(data)
        image = facecodec.decode(data, device="cpu")
        assert image.size == (header.width, header.height) and image.mode == header.mode, name
        for reduce in range(1, load_spec(header.weights_id).family.max_reduce + 1):
            image = facecodec.decode(data, device="cpu", reduce=reduce)
            assert image.size == reduced_size(header.width, header.height, reduce), (name, reduce)
    with open("/proc/self/status") as f:
        vm_kb = int(next(line.split()[1] for line in f if line.startswith("VmSize")))
    # a hostile header asking for a huge image then fails inside this process instead of exhausting the machine
    limit = (vm_kb + address_space_mb * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGPROF, _on_timer)


def corpus_ids(corpus) -> list[str]:
    """The weights ids of the corpus files, in order of first appearance (one counter slot each)."""
    from facecodec.bitstream import unpack

    return list(dict.fromkeys(unpack(data)[0].weights_id for _, data in corpus))


def worker(corpus, seed, start, stop, seconds, address_space_mb, shared, failures) -> None:
    setup_worker(corpus, address_space_mb)
    id_slot = {weights_id: len(SLOTS) + k for k, weights_id in enumerate(corpus_ids(corpus))}
    shared[SLOT["ready"]] = 1
    for index in range(start, stop):
        shared[SLOT["current"]] = index
        data, steps, reduce = make_input(seed, index, corpus)
        stage, failure, decoded_with = check(data, seconds, reduce)
        shared[SLOT[stage]] += 1
        if reduce:
            shared[SLOT["reduced"]] += 1
            shared[SLOT["reduced_decoded"]] += stage == "decoded"
        if decoded_with in id_slot:
            shared[id_slot[decoded_with]] += 1
        if failure is not None:
            failures.put({**failure, "index": index, "steps": steps})
        if (index - start) % RSS_SAMPLE_EVERY == RSS_SAMPLE_EVERY - 1:
            kb = rss_kb()
            if not shared[SLOT["rss_first_kb"]]:
                shared[SLOT["rss_first_kb"]] = kb
            shared[SLOT["rss_last_kb"]] = kb
            shared[SLOT["rss_peak_kb"]] = max(shared[SLOT["rss_peak_kb"]], kb)
            shared[SLOT["samples"]] += 1
    shared[SLOT["current"]] = stop
    shared[SLOT["maxrss_kb"]] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --------------------------------------------------------------------------- the supervisor

def save_failure(crashes: Path, failure: dict, data: bytes, seed: int) -> str:
    crashes.mkdir(exist_ok=True)
    name = f"{failure['kind'].replace(' ', '-')}-{hashlib.sha1(data).hexdigest()[:12]}"
    (crashes / f"{name}.fcz").write_bytes(data)
    reason = [f"kind: {failure['kind']}", f"signature: {failure['signature']}",
              f"input: --seed {seed}, index {failure['index']}", f"mutations: {' > '.join(failure['steps'])}",
              f"reduce: {failure.get('reduce', 0)}", f"seconds: {failure.get('seconds')}", "",
              failure.get("detail", "")]
    (crashes / f"{name}.txt").write_text("\n".join(reason).rstrip() + "\n")
    return f"{name}.fcz"


def replay(crashes: Path, corpus, args) -> list[dict]:
    """Run every saved crash input again, under the same limits as the campaign; report which now pass."""
    results = []
    for path in sorted(crashes.glob("*.fcz")) if crashes.is_dir() else []:
        note = path.with_suffix(".txt")
        lines = note.read_text().splitlines() if note.exists() else []
        recorded = next((line.split(": ", 1)[1] for line in lines if line.startswith("signature: ")), "?")
        reduce = int(next((line.split(": ", 1)[1] for line in lines if line.startswith("reduce: ")), "0"))
        results.append({"file": path.name, "recorded": recorded, "data": path.read_bytes(), "reduce": reduce})
    ctx = mp.get_context("spawn")
    pool = None
    for result in results:
        if pool is None:
            pool = ctx.Pool(1, initializer=setup_worker, initargs=(corpus[:1], args.max_rss_mb))
            pool.apply(os.getpid)  # wait out the start-up (slow on a busy machine) before timing anything
        try:
            # check() bounds CPU time itself; this wall-clock limit only catches a native hang
            stage, failure, _ = pool.apply_async(check, (result["data"], args.seconds_per_input,
                                                         result["reduce"])).get(timeout=HANG_WALL_SECONDS)
        except mp.TimeoutError:
            stage, failure = "failed", {"signature": "hang (no result)"}
            pool.terminate()
            pool = None
        except Exception as exc:  # the pool's worker died
            stage, failure = "failed", {"signature": f"worker died ({type(exc).__name__})"}
            pool.terminate()
            pool = None
        result.pop("data", None)
        result["fixed"] = failure is None
        result["now"] = f"passes: {STAGE_NAMES[stage]}" if failure is None else f"FAILS: {failure['signature']}"
    if pool is not None:
        pool.close()
        pool.join()
    return results


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith(field)))
    except (OSError, StopIteration):
        return 0


def campaign(args, corpus) -> dict:
    """Run inputs 0 .. args.inputs - 1 in a worker process, restarting it after any input that kills it."""
    ctx = mp.get_context("spawn")
    ids = corpus_ids(corpus)
    shared = ctx.Array(ctypes.c_longlong, len(SLOTS) + len(ids), lock=False)
    failures_queue = ctx.Queue()
    totals = Counter()
    failures: dict[str, dict] = {}
    # A worker stuck on one input is killed after this much CPU time without progress (a native loop the
    # timer could not interrupt), or after HANG_WALL_SECONDS of wall-clock time (a native deadlock).
    hang_cpu = max(30.0, 10 * args.seconds_per_input)
    rss = {"peak_kb": 0, "first_kb": 0, "last_kb": 0, "samples": 0}
    restarts, next_index, last_report = 0, 0, time.monotonic()

    def record(failure: dict) -> None:
        data, steps, reduce = make_input(args.seed, failure["index"], corpus)
        failure.setdefault("steps", steps)
        failure.setdefault("reduce", reduce)
        entry = failures.setdefault(failure["signature"], {"kind": failure["kind"], "count": 0, "examples": [],
                                                           "first_index": failure["index"]})
        entry["count"] += 1
        if len(entry["examples"]) < MAX_SAVED_PER_FAILURE:
            entry["examples"].append(save_failure(args.out / "crashes", failure, data, args.seed))
        if entry["count"] <= 3:
            print(f"  failure {failure['signature']} (input {failure['index']})", flush=True)

    def drain() -> None:
        while not failures_queue.empty():
            record(failures_queue.get())

    while next_index < args.inputs:
        for k in range(len(shared)):
            shared[k] = 0
        shared[SLOT["current"]] = next_index
        process = ctx.Process(target=worker, args=(corpus, args.seed, next_index, args.inputs,
                                                    args.seconds_per_input, args.max_rss_mb, shared,
                                                    failures_queue), daemon=True)
        process.start()
        seen, seen_at, seen_cpu, killed = -1, time.monotonic(), 0.0, None
        while process.is_alive():
            process.join(0.2)
            drain()
            rss["peak_kb"] = max(rss["peak_kb"], proc_kb(process.pid, "VmHWM"))
            if not shared[SLOT["ready"]]:
                seen_at, seen_cpu = time.monotonic(), proc_cpu_seconds(process.pid)  # loading: no hang clock yet
            elif shared[SLOT["current"]] != seen:
                seen, seen_at, seen_cpu = shared[SLOT["current"]], time.monotonic(), proc_cpu_seconds(process.pid)
            if proc_kb(process.pid, "VmRSS") > args.max_rss_mb * 1024:
                killed = ("memory", f"worker RSS over {args.max_rss_mb} MB")
            elif proc_cpu_seconds(process.pid) - seen_cpu > hang_cpu:
                killed = ("hang", f"no progress for {hang_cpu:g} s of CPU time")
            elif time.monotonic() - seen_at > HANG_WALL_SECONDS:
                killed = ("hang", f"no progress for {HANG_WALL_SECONDS:g} s")
            if killed:
                process.kill()
                process.join()
                break
            if time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                failing = sum(e["count"] for e in failures.values())
                print(f"  input {shared[SLOT['current']]} of {args.inputs}; {failing} failing so far", flush=True)
        drain()
        if not shared[SLOT["ready"]] and killed is None:
            raise SystemExit(f"the fuzz worker failed while loading (exit code {process.exitcode}): see its "
                             f"traceback above; if the weights file was being replaced, run again")
        for stage in STAGES + ("reduced", "reduced_decoded"):
            totals[stage] += shared[SLOT[stage]]
        for k, weights_id in enumerate(ids):
            totals[f"decoded with {weights_id}"] += shared[len(SLOTS) + k]
        if shared[SLOT["samples"]]:
            rss["first_kb"] = rss["first_kb"] or shared[SLOT["rss_first_kb"]]
            rss["last_kb"] = shared[SLOT["rss_last_kb"]]
            rss["samples"] += shared[SLOT["samples"]]
        rss["peak_kb"] = max(rss["peak_kb"], shared[SLOT["maxrss_kb"]])
        current = shared[SLOT["current"]]
        if current >= args.inputs and process.exitcode == 0:
            break
        if killed is None:  # the worker died by itself: a native crash, an abort, or the OOM killer
            code = process.exitcode
            killed = ("crash", f"worker died: {f'signal {signal.Signals(-code).name}' if code < 0 else f'exit {code}'}")
        totals["failed"] += 1
        record({"kind": killed[0], "signature": killed[1], "index": current, "detail": killed[1], "seconds": None})
        restarts += 1
        next_index = current + 1
    return {"stages": {s: totals[s] for s in STAGES}, "failures": failures, "peak_rss_kb": rss["peak_kb"],
            "reduced": {"inputs": totals["reduced"], "decoded": totals["reduced_decoded"]},
            "decoded_by_weights": {weights_id: totals[f"decoded with {weights_id}"] for weights_id in ids},
            "rss_first_kb": rss["first_kb"], "rss_last_kb": rss["last_kb"], "rss_samples": rss["samples"],
            "restarts": restarts}


def commit() -> str:
    """The checkout's commit, and whether the working tree differs from it (read-only git calls)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "--no-optional-locks", *args], cwd=HERE, capture_output=True, text=True,
                                  timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{head} with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else head


def versions(weights_ids: list[str]) -> dict:
    import numpy
    import torch

    from facecodec.zoo import manifest_entry

    # the corpus is encoded with every installed weights id: record the exact file of each (the manifest's SHA-256,
    # which loading checks the file against)
    weights = {weights_id: manifest_entry(weights_id).get("sha256", "no file") for weights_id in weights_ids}
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "constriction": importlib.metadata.version("constriction"),
            "lepton-jpeg-python": importlib.metadata.version("lepton-jpeg-python"),
            "weights": "; ".join(f"{weights_id} sha256 {sha}" for weights_id, sha in weights.items()),
            "weights_sha256": weights, "commit": commit()}


def write_summary(args, argv, corpus, result, replayed, elapsed, versions_used, versions_at_end) -> dict:
    growth_kb = result["rss_last_kb"] - result["rss_first_kb"] if result["rss_samples"] > 1 else 0
    summary = {
        "command": "python benchmarks/fuzz/fuzz_decode.py " + " ".join(shlex.quote(a) for a in argv),
        "seed": args.seed, "inputs": args.inputs, "seconds": round(elapsed, 1),
        "inputs_per_second": round(args.inputs / elapsed, 1) if elapsed else None,
        "seconds_per_input_bound": args.seconds_per_input,
        "stages": result["stages"], "classified": sum(result["stages"].values()),
        "reduced_decodes": {**result["reduced"], "share_asked": REDUCED_SHARE,
                            "reduces_drawn_from": sorted(set(REDUCES))},
        "decoded_by_weights": result["decoded_by_weights"],
        "failures": result["failures"],
        "distinct_failures": len(result["failures"]),
        "inputs_failing": sum(f["count"] for f in result["failures"].values()),
        "worker_restarts": result["restarts"],
        "memory": {"peak_rss_mb": round(result["peak_rss_kb"] / 1024, 1),
                   "rss_after_first_sample_mb": round(result["rss_first_kb"] / 1024, 1),
                   "rss_at_last_sample_mb": round(result["rss_last_kb"] / 1024, 1),
                   "growth_mb": round(growth_kb / 1024, 1), "growth_bound_mb": args.max_rss_growth_mb,
                   "growth_flagged": growth_kb > args.max_rss_growth_mb * 1024,
                   "sampled_every_inputs": RSS_SAMPLE_EVERY},
        "replayed_saved_crashes": replayed,
        "corpus": [f"{name} ({len(data)} bytes)" for name, data in corpus],
        "versions": versions_used,
        "weights_changed_during_run": versions_at_end["weights_sha256"] != versions_used["weights_sha256"],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    lines = [
        "# Decoder fuzzing: summary of the last run", "",
        "Written by `benchmarks/fuzz/fuzz_decode.py` (see its docstring); the numbers are in `summary.json`.", "",
        f"- command: `{summary['command']}`",
        f"- finished {summary['finished']}, {elapsed / 60:.1f} min "
        f"({summary['inputs_per_second']} inputs/s, one worker, torch on 1 thread)",
        f"- inputs tried: {args.inputs}; per-input bound {args.seconds_per_input:g} s of CPU time",
        f"- failures: {summary['inputs_failing']} inputs, {summary['distinct_failures']} distinct; "
        f"worker restarts: {result['restarts']}",
        f"- memory: peak RSS of the decoding worker {summary['memory']['peak_rss_mb']} MB; RSS {summary['memory']['rss_after_first_sample_mb']}"
        f" -> {summary['memory']['rss_at_last_sample_mb']} MB over the run (sampled every {RSS_SAMPLE_EVERY} inputs "
        "after returning free heap to the system, "
        f"growth {'FLAGGED' if summary['memory']['growth_flagged'] else 'within'} the {args.max_rss_growth_mb} MB bound)",
        f"- reduced decodes: {result['reduced']['inputs']} inputs decoded at a reduce drawn from "
        f"{sorted(set(REDUCES))} (about {REDUCED_SHARE:.0%}), {result['reduced']['decoded']} of them to an image of "
        f"the reduced size; the rest refused with FczError (weights without levels must refuse every reduce > 0)",
        "- versions at the start: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()
                                                if k not in ("weights", "weights_sha256", "commit")),
        f"- commit: {summary['versions']['commit']}",
        "- weights (SHA-256 from weights/manifest.json, which loading checks each file against)"
        + (" - CHANGED during the run" if summary["weights_changed_during_run"] else "") + ":",
        *(f"  - {weights_id}: {sha}" for weights_id, sha in summary["versions"]["weights_sha256"].items()), "",
        "## Where the inputs stopped", "", "| stage | inputs | share |", "| --- | ---: | ---: |",
    ]
    total = max(1, summary["classified"])
    for stage in STAGES:
        count = result["stages"][stage]
        lines.append(f"| {STAGE_NAMES[stage]} | {count} | {100 * count / total:.1f}% |")
    lines += ["", "Inputs decoded to an image, by the weights id in their header:", "",
              "| weights | decoded |", "| --- | ---: |"]
    lines += [f"| {weights_id} | {count} |" for weights_id, count in result["decoded_by_weights"].items()]
    lines += ["", "## Failures in this run", ""]
    if not result["failures"]:
        lines.append("None: every input decoded to an image of the header's size and mode (at a reduce, the "
                     "reduced size, and only with weights that have that many levels), or raised FczError, "
                     "within the time bound.")
    else:
        lines += ["| failure | kind | inputs | saved |", "| --- | --- | ---: | --- |"]
        for sig, entry in result["failures"].items():
            lines.append(f"| `{sig}` | {entry['kind']} | {entry['count']} | {', '.join(entry['examples'])} |")
    lines += ["", "## Saved failing inputs (benchmarks/fuzz/crashes/), replayed at the start of this run", ""]
    if not replayed:
        lines.append("None saved.")
    else:
        lines += ["| input | failure when found | now |", "| --- | --- | --- |"]
        lines += [f"| {r['file']} | `{r['recorded']}` | {r['now']} |" for r in replayed]
    lines += ["", "## Corpus", ""] + [f"- {c}" for c in summary["corpus"]]
    (args.out / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds-per-input", type=float, default=2.0, help="CPU seconds before an input is flagged")
    parser.add_argument("--max-rss-mb", type=int, default=3072, help="kill and flag a worker above this RSS")
    parser.add_argument("--max-rss-growth-mb", type=int, default=64, help="flag RSS growth beyond this over the run")
    parser.add_argument("--out", type=Path, default=HERE, help="where summary.json, SUMMARY.md, crashes/ go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    import torch

    torch.set_num_threads(1)
    corpus = build_corpus(args.seed)
    # now: a weights file may be replaced during a long run (workers keep theirs)
    versions_used = versions(corpus_ids(corpus))
    replayed = replay(args.out / "crashes", corpus, args)
    for r in replayed:
        print(f"replay {r['file']}: {r['now']}", flush=True)
    print(f"corpus: {len(corpus)} files; fuzzing {args.inputs} inputs, seed {args.seed}", flush=True)
    result = campaign(args, corpus)
    summary = write_summary(args, argv, corpus, result, replayed, time.monotonic() - started, versions_used,
                            versions(corpus_ids(corpus)))
    print(json.dumps({k: summary[k] for k in ("inputs", "seconds", "stages", "reduced_decodes", "decoded_by_weights",
                                              "distinct_failures", "inputs_failing", "memory")}, indent=2))
    return 1 if summary["distinct_failures"] or summary["memory"]["growth_flagged"] else 0


if __name__ == "__main__":
    sys.exit(main())
