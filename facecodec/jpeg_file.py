"""Lossless coding of a JPEG input: the JPEG's own quantized DCT coefficients, recompressed, instead of its pixels.

A JPEG's pixels are fixed by its quantized coefficients: any libjpeg decodes them to the same pixels (Pillow's
libjpeg-turbo ``islow`` IDCT and "fancy" upsampling are integer arithmetic). So a lossless file of a JPEG need not
code the pixels, which costs 4-6 bits per pixel even for the best pixel coders (JPEG XL's modular mode), when the
JPEG itself holds them in 1-2: it keeps the JPEG's image data, recompressed by Lepton (Dropbox's, in Microsoft's
Rust port ``lepton-jpeg-python``), which predicts each coefficient from its decoded neighbours and codes it with an
adaptive binary arithmetic coder, 13-22 % smaller than the JPEG's Huffman codes (measured on lfw-test and
faces/val), and bit-exact::

    encode: JPEG file -> image data (the metadata segments out: the file's own metadata block carries them)
            -> check that it decodes to exactly the pixels encoded -> Lepton -> padded payload
    decode: payload -> Lepton -> the JPEG image data -> libjpeg (Pillow) -> the pixels, exactly

The encoder checks the pixels before it keeps a JPEG this way, so a JPEG whose pixels are not its plain decode (an
EXIF orientation turns them) or that Lepton cannot code (arithmetic-coded, 12-bit) is coded from its pixels as any
other image (facecodec.families.lossless). The payload's layout is in bitstream/FORMAT.md ("Payload of the
jpeg-file family").
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from facecodec.bitstream import FczError

SOI, EOI, SOS = b"\xff\xd8", b"\xff\xd9", 0xDA
# Segments before the first scan that tell a decoder how to decode (APP0 JFIF and APP14 Adobe say which colour
# transform the components take): kept. Every other APPn and COM is metadata: left out.
DECODING_APPS = (0xE0, 0xEE)
APPS = range(0xE0, 0xF0)
COM = 0xFE
WORD = 4  # the container counts payloads in 32-bit words (FORMAT.md)

# Lepton's stream (lepton_jpeg_rust's lepton_header.rs) opens with 28 fixed bytes: magic, version, 'Z' (baseline) or
# 'X' (progressive), 20 bytes whose 4-8 say "MS" and the inflated header's length, the JPEG's length, then the
# length of a zlib-deflated header. Lepton allocates what that header's length fields say before reading, so
# fields damaged there cost gigabytes (a fuzzed 1 KB stream took 1.1 GB): they are checked here first.
LEPTON_FIXED = struct.Struct("<3sc4x2sI6xII")   # magic + version, type, "MS", inflated length, JPEG length, deflated
LEPTON_MAGIC = b"\xcf\x84\x01"
LEPTON_TYPES = (b"Z", b"X")
MAX_LEPTON_HEADER = 1 << 20   # inflated; a JPEG's tables and scan headers, less its metadata, take a few KB
# The inflated header's sections: their 3-byte marker -> (bytes of fixed fields, bytes per unit of a u32 count
# that follows the fixed fields, or 0 for none). "HH" + a count byte is the thread split, 16 bytes per thread.
LEPTON_SECTIONS = {b"HDR": (0, 1), b"P0D": (1, 0), b"CRS": (0, 4), b"FRS": (0, 1), b"GRB": (0, 1), b"EEE": (28, 0)}
LEPTON_THREADS, THREAD_BYTES = b"HH", 16


def image_data(jpeg: bytes) -> bytes:
    """A JPEG file's bytes -> the same JPEG without its metadata segments (EXIF, ICC, XMP, comments: APP1-APP13,
    APP15, COM before the first scan) and without anything after its end marker (an appended preview, say);
    FczError if its markers do not parse."""
    if not jpeg.startswith(SOI):
        raise FczError("not a JPEG file")
    kept, pos = [SOI], len(SOI)
    while True:
        while jpeg[pos:pos + 2] == b"\xff\xff":   # fill bytes may precede a marker
            pos += 1
        if pos + 4 > len(jpeg) or jpeg[pos] != 0xFF:
            raise FczError("corrupt JPEG: a segment marker is missing")
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        if marker == SOS:
            end = jpeg.find(EOI, pos)   # entropy-coded data stuff every 0xFF, so this is the end marker
            if end < 0:
                raise FczError("corrupt JPEG: no end marker")
            kept.append(jpeg[pos:end + len(EOI)])
            return b"".join(kept)
        if length < 2 or pos + 2 + length > len(jpeg):
            raise FczError("corrupt JPEG: a segment runs past the end of the file")
        if not ((marker in APPS and marker not in DECODING_APPS) or marker == COM):
            kept.append(jpeg[pos:pos + 2 + length])
        pos += 2 + length


def kept_jpeg(jpeg: bytes, rgb: Image.Image) -> bytes | None:
    """The image data of ``jpeg`` (``image_data``) if it decodes to exactly the pixels of ``rgb`` (what the
    encoder would otherwise code), else None."""
    try:
        data = image_data(jpeg)
        decoded = Image.open(io.BytesIO(data))
        if decoded.size != rgb.size:
            return None
        same = np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(rgb))
    except (FczError, OSError, SyntaxError, ValueError):
        return None
    return data if same else None


def check_lepton_stream(stream: bytes, max_jpeg_bytes: int) -> None:
    """FczError unless the lengths in Lepton's header fit the stream and a JPEG of at most ``max_jpeg_bytes``:
    what Lepton would otherwise allocate unchecked."""
    if len(stream) < LEPTON_FIXED.size:
        raise FczError("corrupt file: the JPEG payload is cut short")
    magic, kind, ms, inflated_length, jpeg_length, deflated_length = LEPTON_FIXED.unpack_from(stream)
    if magic != LEPTON_MAGIC or kind not in LEPTON_TYPES or ms != b"MS":
        raise FczError("corrupt file: the JPEG payload is not a Lepton stream this facecodec writes")
    if jpeg_length > max_jpeg_bytes or inflated_length > MAX_LEPTON_HEADER \
            or deflated_length > len(stream) - LEPTON_FIXED.size:
        raise FczError("corrupt file: the JPEG payload's lengths do not fit the file")
    inflater = zlib.decompressobj()
    try:
        header = inflater.decompress(stream[LEPTON_FIXED.size:LEPTON_FIXED.size + deflated_length], inflated_length + 1)
    except zlib.error:
        raise FczError("corrupt file: the JPEG payload's header does not inflate") from None
    if len(header) != inflated_length or not inflater.eof:
        raise FczError("corrupt file: the JPEG payload's header is not the length it says")
    pos = 0
    while pos < len(header):
        marker = header[pos:pos + 3]
        if marker[:2] == LEPTON_THREADS and len(marker) == 3:
            pos += 3 + THREAD_BYTES * marker[2]
        elif marker in LEPTON_SECTIONS:
            fixed, unit = LEPTON_SECTIONS[marker]
            pos += 3 + fixed
            if unit:
                count = int.from_bytes(header[pos:pos + 4], "little")
                pos += 4 + unit * count
        else:
            raise FczError("corrupt file: the JPEG payload's header holds an unknown section")
        if pos > len(header):
            raise FczError("corrupt file: a section of the JPEG payload's header runs past its end")


def max_jpeg_bytes(width: int, height: int) -> int:
    """A bound on the JPEG image data of a ``width`` x ``height`` image that the encoder keeps (it checks its own
    streams against it): 8 bytes a pixel (a quality-100 JPEG of noise takes about 3) and 64 KB of tables."""
    return 8 * width * height + (1 << 16)


def lepton_limits(width: int, height: int) -> dict[str, int]:
    """Lepton's own limits for a JPEG of this size: nothing larger is decoded."""
    return {"max_jpeg_width": width, "max_jpeg_height": height, "max_jpeg_file_size": max_jpeg_bytes(width, height)}


def lepton_stream(jpeg: bytes, width: int, height: int) -> bytes | None:
    """JPEG image data of a ``width`` x ``height`` image -> Lepton's stream of it; None where Lepton cannot code this
    JPEG, or its stream does not give the same bytes back or would fail the decoder's checks (``check_lepton_stream``)."""
    import lepton_jpeg_python

    limits = lepton_limits(width, height)
    try:
        stream = lepton_jpeg_python.compress_bytes(jpeg, limits)
        check_lepton_stream(stream, max_jpeg_bytes(width, height))
        if lepton_jpeg_python.decompress_bytes(stream, limits) != jpeg:
            return None
    except (RuntimeError, FczError):   # Lepton's refusal of a JPEG it does not support
        return None
    return stream


def jpeg_of_stream(stream: bytes, width: int, height: int) -> bytes:
    """Lepton's stream of a ``width`` x ``height`` JPEG -> its JPEG image data; FczError if it is damaged."""
    import lepton_jpeg_python

    check_lepton_stream(stream, max_jpeg_bytes(width, height))
    try:
        return lepton_jpeg_python.decompress_bytes(stream, lepton_limits(width, height))
    except RuntimeError:
        raise FczError("corrupt file: the JPEG payload does not decode") from None


def padded(data: bytes) -> bytes:
    """``data`` padded to whole words (the container counts payloads in them) with ``k`` bytes of value ``k`` (1..4)."""
    pad = WORD - len(data) % WORD
    return data + bytes([pad]) * pad


def unpadded(payload: bytes) -> bytes:
    """A payload less its padding (``padded``); FczError if the padding is damaged."""
    pad = payload[-1] if payload else 0
    if not 1 <= pad <= WORD or len(payload) <= pad or payload[-pad:] != bytes([pad]) * pad:
        raise FczError("corrupt file: the JPEG payload's padding is damaged")
    return payload[:-pad]


def compress(jpeg: bytes, width: int, height: int) -> bytes | None:
    """JPEG image data of a ``width`` x ``height`` image -> the jpeg-file family's payload: Lepton's stream, padded;
    None where Lepton cannot code it (``lepton_stream``)."""
    stream = lepton_stream(jpeg, width, height)
    return None if stream is None else padded(stream)


def decompress(payload: bytes, width: int, height: int) -> bytes:
    """A jpeg-file payload of a ``width`` x ``height`` image -> the JPEG image data it holds; FczError if it is
    damaged."""
    return jpeg_of_stream(unpadded(payload), width, height)


def decode_pixels(jpeg: bytes, width: int, height: int, reduce: int = 0) -> np.ndarray:
    """JPEG image data -> its pixels ``3 x H x W`` (uint8, RGB; grey repeated), 1 / 2^reduce of the size (each side
    rounded up); FczError unless it is a ``width`` x ``height`` JPEG that decodes.

    A thumbnail is libjpeg's own DCT-scaled decode (it skips most of the IDCT) where 2^reduce divides both sides, and
    otherwise an area average of the full decode: libjpeg's last row and column would stand for the few pixels of a
    partial block as for a whole one, which moved a 97 x 101 face's 1/8 thumbnail 3 levels off its mean."""
    try:
        image = Image.open(io.BytesIO(jpeg), formats=["JPEG"])
        if image.size != (width, height):
            raise FczError(f"corrupt file: the JPEG inside is {image.size[0]}x{image.size[1]}, "
                           f"the header says {width}x{height}")
        size = (-(-width // 2 ** reduce), -(-height // 2 ** reduce))
        if reduce and width % 2 ** reduce == 0 and height % 2 ** reduce == 0:
            image.draft(image.mode, size)   # Pillow picks the smallest DCT scale that still covers ``size``
        pixels = np.asarray(image.convert("RGB"))
        if image.size != size:
            pixels = area_downscaled(pixels, *size)
        return pixels.transpose(2, 0, 1)
    except (OSError, SyntaxError, ValueError) as exc:   # Pillow's word for JPEG data it cannot decode
        raise FczError(f"corrupt file: the JPEG inside does not decode ({exc})") from None


def area_downscaled(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 pixels ``H x W x C`` -> ``height x width x C``, no larger, each pixel the mean of the area it covers.

    Unlike Pillow's BOX filter, whose weights are whole pixels, this keeps the picture's mean brightness (up to
    rounding) whatever the ratio of the sizes.
    """
    x = pixels.astype(np.float64)
    for axis, size in ((0, height), (1, width)):
        x = _area_averaged(x, size, axis)
    return np.rint(x).astype(np.uint8)


def _area_averaged(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``x`` along ``axis`` averaged over ``size`` equal intervals: differences of its running sum, which is exactly
    linear between whole pixels, at the intervals' edges."""
    x = np.moveaxis(x, axis, 0)
    n = x.shape[0]
    running = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    edges = np.arange(size + 1) * (n / size)
    whole = np.minimum(edges.astype(np.int64), n - 1)
    fraction = (edges - whole).reshape(-1, *[1] * (x.ndim - 1))
    at_edges = running[whole] + fraction * (running[whole + 1] - running[whole])
    return np.moveaxis(np.diff(at_edges, axis=0) / (n / size), 0, axis)
