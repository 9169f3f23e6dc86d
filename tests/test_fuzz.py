"""Property-based fuzzing of the decoder, fast enough for every test run.

The property, for any bytes at all: ``facecodec.decode`` returns a PIL image of
the size and mode the header states, or raises ``FczError``; ``read_header``
agrees; nothing else is raised and nothing hangs. The inputs are real .fcz files
(encoded here from small crops of scikit-image's astronaut, and hand-built from
random symbols) after bit flips, byte edits, truncation, extension, insertion,
deletion, header-field edits and splices, most re-sealed with a correct CRC-32
so that they get past the checksum to the field checks, the range decoder and
the network. The files cover every installed weights id (``installed_ids()``),
each coded by its own latent codec, with the payloads of format versions 3 and 2 (the wavelet
family's resolution- and plane-ordered payloads) and, for the wavelet family,
4 (a tile table and the tiles' payloads), with a metadata block and a JPEG source block; the weights that keep a
JPEG's own coefficients (``Family.keeps_jpeg_files``), from JPEG inputs only. Each is written as facecodec writes it:
the compact header (format 7) for the weights in ``REGISTRY``, the long one (formats 2..6) for the others; and each
compact file has its long-header twin beside it (the same header and payload in the layout facecodec wrote before
format 7 and still reads), so that the edits of either header's fields run on every test run. The property is also
checked for reduced decodes (``reduce``: the wavelet family's smaller images;
every other family must refuse). benchmarks/fuzz/fuzz_decode.py runs the same idea
at length (100,000 inputs and more).
"""
from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import replace
from functools import partial
from typing import Callable
from unittest import mock
import signal
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms
from skimage.data import astronaut

import facecodec
from facecodec import FczError
from facecodec import read_header
from facecodec.bitstream import FczHeader, decode_symbols, encode_symbols, pack, unpack
from facecodec.bitstream.container import COMPACT_VERSION, COMPACT_VERSIONS, MAX_SIDE, OVERLAP_VERSION, REGISTRY
from facecodec.bitstream import contexts as wc
from facecodec.bitstream import subbands as ws
from facecodec.bitstream import wavelet_payload as wb
from facecodec.bitstream.contexts import ContextModel
from facecodec.bitstream.entropy import _SEAL_SLACK_BITS, min_payload_bits
from facecodec.codec import reduced_size
from facecodec.families.wavelet import WaveletFamily
from facecodec.zoo import installed_ids, load_spec, load_weights, pixel_codec_ids
from facecodec.models.threads import using_threads

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECONDS_PER_DECODE = 10  # CPU seconds; every input here is a few hundred bytes, so this slow is a hang


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Hundreds of tiny decodes: one thread is faster than several (and fair to a busy machine)."""
    with using_threads(1):
        yield


# --------------------------------------------------------------------------- inputs

@functools.lru_cache(maxsize=None)
def real_files() -> tuple[bytes, ...]:
    """Encoder output: small crops, RGB and greyscale. First low and high bit depths of the weights that take a
    bit depth (the seed's per-image-range model; the regression tests below use the first two), then for every
    installed weights id its first and last setting (``bits`` or ``quality``, whichever its latent codec takes),
    at sizes with odd sides and, for the wavelet family (stride 1), fewer than 2^4 pixels a side."""
    picture = astronaut()
    crop = lambda w, h, mode: Image.fromarray(picture[30:30 + h, 170:170 + w]).convert(mode)  # noqa: E731
    files = [facecodec.encode(crop(w, h, mode), bits=bits)
             for (w, h), mode, bits in [((40, 48), "RGB", 6), ((16, 24), "L", 1), ((9, 17), "RGB", 8),
                                        ((33, 8), "L", 3)]]
    for weights_id in pixel_codec_ids():
        latent = load_spec(weights_id).family
        for (w, h), mode, setting in [((40, 48), "RGB", latent.settings[0]), ((21, 35), "L", latent.settings[-1])]:
            files.append(facecodec.encode(crop(w, h, mode), weights_id=weights_id, **{latent.option: setting}))
    return with_long_twins(files)


@functools.lru_cache(maxsize=None)
def version_2_files() -> tuple[bytes, ...]:
    """Per installed weights id that codes pixels, its first RGB file above rewritten as format version 2 by its own
    latent codec: the wavelet family's plane-ordered payload (format 3 is resolution-ordered); the others' same
    payload. (A JPEG's own coefficients came after version 3: jpeg_file_files.)"""
    files = []
    for weights_id in pixel_codec_ids():
        data = next(d for d in real_files() if read_header(d).weights_id == weights_id and read_header(d).mode == "RGB")
        header, payload = unpack(data)
        spec = load_spec(weights_id)
        table = spec.table(header)
        old = replace(header, version=2)
        symbols = spec.family.entropy_decode(payload, table, header)
        files.append(pack(old, spec.family.entropy_encode(symbols, table, old)))
    return tuple(files)


def random_symbols(rng: np.random.Generator, model, header: FczHeader) -> np.ndarray:
    """Random symbols valid for the entropy model ``model``: any of ``0 .. alphabet - 1`` for a per-channel count
    table; for the wavelet family's context model signed values, mostly within +-31, some escapes up to 2^19, and
    zero planes where a greyscale image codes none."""
    if isinstance(model, np.ndarray):
        return rng.integers(0, model.shape[-1], size=header.latent_shape)
    assert isinstance(model, ContextModel), f"no random symbols for {type(model).__name__}: add them here"
    values = rng.integers(-wb.DIRECT, wb.DIRECT + 1, size=header.latent_shape)
    escapes = rng.random(values.shape) < 0.08
    k = rng.integers(0, 19, size=int(escapes.sum()))
    values[escapes] = rng.choice([-1, 1], size=len(k)) * (wb.DIRECT + 2 ** k + rng.integers(0, 2 ** k))
    values[ws.channels_coded(header.mode):] = 0
    return values.astype(np.int32)


@functools.lru_cache(maxsize=None)
def random_symbol_files() -> tuple[bytes, ...]:
    """Files for every installed weights id whose symbols are random: content no encoder would make. The header
    fields (quality, bits, ranges) are what the weights' own quantizer gives for random features."""
    rng = np.random.default_rng(7)
    files = []
    for n, weights_id in enumerate(pixel_codec_ids()):
        weights = load_weights(weights_id)
        latent, s = weights.family, weights.stride
        for k, setting in enumerate([latent.settings[len(latent.settings) // 2], latent.settings[-1]]):
            width, height = [(24, 16), (13, 30), (40, 20), (8, 8)][(2 * n + k) % 4]
            h, w = -(-height // s), -(-width // s)
            features = rng.normal(scale=2.0, size=(1, weights.channels, h, w)).astype(np.float32)
            _, fields = latent.quantize(weights.model, features, setting, 0, weights.entropy_tables)
            header = FczHeader(weights_id=weights_id, width=width, height=height, mode="L" if k else "RGB",
                               pad_right=s * w - width, pad_bottom=s * h - height,
                               latent_shape=(weights.channels, h, w), **fields[0])
            table = weights.table(header)
            files.append(pack(header, latent.entropy_encode(random_symbols(rng, table, header), table, header)))
    return with_long_twins(files)


def without_overlap(encode: Callable[[], bytes]) -> bytes:
    """``encode()`` with tiles that do not overlap, as facecodec wrote every tiled file before format 8."""
    with mock.patch.object(WaveletFamily, "tile_overlap", 0):
        return encode()


@functools.lru_cache(maxsize=None)
def tiled_files() -> tuple[bytes, ...]:
    """Per installed weights id whose latent codec codes large images in tiles (the wavelet family), an 80 x 70
    crop coded in 64-pixel tiles (a tile table, then 2 x 2 tile payloads): in the family's overlapping tiles (format
    8) where its tiles overlap, and as before them (format 7's flag 0x02, format 4 in the long header)."""
    picture = astronaut()[30:100, 170:250]
    files = []
    for weights_id in pixel_codec_ids():
        if tiles_large_images(weights_id):
            encode = partial(facecodec.encode, picture, weights_id=weights_id, tile=64)
            files += dict.fromkeys([encode(), without_overlap(encode)])
    return with_long_twins(files)


def tiles_large_images(weights_id: str) -> bool:
    """Whether the weights' latent codec codes large images in tiles (format 4)."""
    family = load_spec(weights_id).family
    return family.tile_boxes(16384, 16384, family.choose_tile(None)) is not None


@functools.lru_cache(maxsize=None)
def metadata_files() -> tuple[bytes, ...]:
    """Files that carry metadata, of the default weights: a 40 x 48 crop with an ICC profile, EXIF and XMP (flags
    0x01), and the tiled 80 x 70 crop with EXIF alone (flags 0x03), in overlapping tiles (format 8) and not; in format
    7, then as their long twins, 5."""
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"
    small, large = Image.fromarray(astronaut()[30:78, 170:210]), Image.fromarray(astronaut()[30:100, 170:250])
    small.info.update(icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
                      exif=exif.tobytes(), xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    large.info.update(exif=exif.tobytes())
    return with_long_twins([facecodec.encode(small), facecodec.encode(large, tile=64),
                            without_overlap(partial(facecodec.encode, large, tile=64))])


@functools.lru_cache(maxsize=None)
def lattice_files() -> tuple[bytes, ...]:
    """Files with a JPEG source block, of the default weights: a 40 x 48 crop saved as a JPEG of quality 75 4:2:0
    (standard tables, flags 0x04), and a greyscale one with tables of its own and EXIF (flags 0x05, and in format 7
    0x08 for greyscale); in format 7, then as their long twins, 6."""
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"
    colour, grey = io.BytesIO(), io.BytesIO()
    Image.fromarray(astronaut()[30:78, 170:210]).save(colour, "JPEG", quality=75, subsampling=2)
    Image.fromarray(astronaut()[40:80, 180:216]).convert("L").save(grey, "JPEG", qtables=[list(range(3, 67))],
                                                                   exif=exif.tobytes())
    return with_long_twins([facecodec.encode(jpeg.getvalue(), quality=60) for jpeg in (colour, grey)])


@functools.lru_cache(maxsize=None)
def jpeg_file_files() -> tuple[bytes, ...]:
    """Lossless files of JPEG inputs, per installed weights id that keeps a JPEG's own coefficients (Lepton's stream
    as the payload): crops saved as a baseline 4:2:0 JPEG, a progressive 4:4:4 one, a greyscale one of odd sides
    and one with EXIF (a metadata block)."""
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"
    crops = [((40, 48), "RGB", {"subsampling": 2}), ((33, 24), "RGB", {"subsampling": 0, "progressive": True}),
             ((21, 35), "L", {}), ((57, 31), "RGB", {"exif": exif.tobytes()})]
    files = []
    for weights_id in set(installed_ids()) - set(pixel_codec_ids()):
        for (w, h), mode, options in crops:
            jpeg = io.BytesIO()
            Image.fromarray(astronaut()[30:30 + h, 170:170 + w]).convert(mode).save(jpeg, "JPEG", quality=80,
                                                                                     **options)
            files.append(facecodec.encode(jpeg.getvalue(), weights_id=weights_id, lossless=True))
    return with_long_twins(files)


def long_twin(data: bytes) -> bytes:
    """The same header and payload in the long header, which facecodec wrote before format 7 and still reads."""
    return pack(*unpack(data), long_header=True)


def with_long_twins(files: list[bytes]) -> tuple[bytes, ...]:
    """``files``, then the long-header twin of each compact one (format 7), so that the edits at the long header's
    offsets keep running on files of the weights that are now written with the compact one."""
    return (*files, *(long_twin(data) for data in files if data[4] == COMPACT_VERSION))   # format 8 has no long form


def all_files() -> tuple[bytes, ...]:
    return (real_files() + version_2_files() + random_symbol_files() + tiled_files() + metadata_files()
            + lattice_files() + jpeg_file_files())


def pick(index: int, compact: bool | None = None) -> bytes:
    """File ``index`` of all_files(), modulo their number (which follows the installed weights); only those with the
    compact header (format 7) where ``compact``, only those with the long one where it is False."""
    files = [data for data in all_files() if compact is None or (data[4] in COMPACT_VERSIONS) == compact]
    return files[index % len(files)]


def pick_with_ranges(index: int) -> bytes:
    """Among the files that carry quantizer ranges (quality byte 0), the ``index``-th, modulo their number."""
    files = [data for data in all_files() if not read_header(data).quality]
    return files[index % len(files)]


file_index = st.integers(0, 10**4)  # pick(): any of all_files()


def seal(body: bytes) -> bytes:
    """Append a correct CRC-32, so an edit gets past the checksum to the checks behind it."""
    return body + struct.pack("<I", zlib.crc32(body))


def offsets(data: bytes) -> dict[str, int | None]:
    """Where FORMAT.md puts each part of a valid file. The long header (version 2 on): "shape" the shape block,
    "ranges" where the quantizer ranges would start (files with a quality level have none, and the metadata block or
    the payload length sits there), "length" the payload length. The compact header (version 7): "width" and
    "height" the sides' varints; no payload length ("length" None): the payload runs to the checksum. Both: "quality",
    where the metadata and JPEG source blocks would start, "payload", "crc"."""
    if data[4] in COMPACT_VERSIONS:
        fields = {"width": 7}
        at = 7
        for side in ("height", "quality"):   # LEB128: a side's last byte is the one below 0x80
            while data[at] & 0x80:
                at += 1
            at += 1
            fields[side] = at
        metadata = at + 1
    else:
        shape = 7 + data[6]
        channels = struct.unpack_from("<H", data, shape + 12)[0]
        fields = {"shape": shape, "quality": shape + 18, "ranges": shape + 19, "channels": channels}
        metadata = shape + 19 + (0 if data[shape + 18] else 8 * channels)
    flags = data[5] if data[4] >= 5 else 0
    lattice = metadata
    if flags & 1:
        for _ in range(data[metadata]):   # count, then (kind, length E, E bytes) per entry
            lattice += 5 + struct.unpack_from("<I", data, lattice + 2)[0]
        lattice += 1
    end = lattice
    if flags & 4:                        # subsampling, strengths, form, then a quality or 64 / 128 steps
        end += 3 + (1 if data[lattice + 2] == 0 else 64 * (2 if data[lattice] else 1))
    compact = data[4] in COMPACT_VERSIONS
    return {**fields, "metadata": metadata, "lattice": lattice, "length": None if compact else end,
            "payload": end if compact else end + 4, "crc": len(data) - 4}


def with_payload(data: bytes, payload: bytes) -> bytes:
    """The body (less the CRC) of ``data`` with ``payload`` in place of its own; a long header's length field says
    its length (the compact header has none: its payload runs to the checksum)."""
    where = offsets(data)
    if where["length"] is None:
        return data[:where["payload"]] + payload
    return data[:where["length"]] + struct.pack("<I", len(payload)) + payload


def varint(value: int, size: int | None = None) -> bytes:
    """``value`` as a LEB128 varint in ``size`` bytes: by default the fewest, the one spelling format 7 takes; more
    gives a spelling with needless zero groups (1 as 0x81 0x00), fewer drops the high bits."""
    size = size or max(1, -(-value.bit_length() // 7))
    return bytes((value >> 7 * k) & 0x7F | (0x80 if k < size - 1 else 0) for k in range(size))


class DecodeTookTooLong(BaseException):
    """A BaseException, so that no ``except Exception`` inside the codec can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt after ``seconds`` of CPU time (not wall-clock time: the machine may be busy with training)."""
    def expire(signum, frame):
        raise DecodeTookTooLong(f"decode ran over {seconds} CPU seconds")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def decodes_or_refuses(data: bytes, reduce: int = 0) -> Image.Image | None:
    """The property. Returns the image, or None where the file was refused with FczError.

    At ``reduce`` > 0 the image is 1 / 2^reduce of the header's size (sides rounded up), and only weights
    whose latent codec has that many levels (``max_reduce``) may give one."""
    with time_limit(SECONDS_PER_DECODE):
        try:
            image = facecodec.decode(data, device="cpu", reduce=reduce)
        except FczError:
            image = None
        try:
            header = facecodec.read_header(data)
        except FczError:
            header = None
    if image is not None:
        assert header is not None, "decode accepted a file that read_header refuses"
        assert isinstance(image, Image.Image)
        assert (image.width, image.height, image.mode) == (*reduced_size(header.width, header.height, reduce),
                                                           header.mode)
        assert reduce <= load_spec(header.weights_id).family.max_reduce, "decoded at a reduce its weights lack"
    return image


# --------------------------------------------------------------------------- the property under mutation

def test_files_cover_every_installed_weights_id_and_format_version():
    files = all_files()
    assert {read_header(data).weights_id for data in files} == set(installed_ids())
    tiling = {read_header(d).weights_id for d in tiled_files()}
    assert tiling == {i for i in installed_ids() if tiles_large_images(i)} != set()
    for weights_id in pixel_codec_ids():
        overlapping = load_spec(weights_id).family.tile_overlap > 0
        assert {read_header(d).version for d in files if read_header(d).weights_id == weights_id} == \
            {2, 3} | ({4} if weights_id in tiling else set()) | ({8} if weights_id in tiling and overlapping else set())
    compact = [d for d in files if d[4] == COMPACT_VERSION]
    assert {read_header(d).weights_id for d in compact} == {i for i, _ in REGISTRY} & set(installed_ids()) != set()
    assert all(long_twin(d) in files for d in compact)
    assert {d[5] for d in compact} >= {0x00, 0x01, 0x02, 0x04, 0x08}   # each flag of format 7 on its own, too
    assert {d[4] for d in files} == {2, 3, 4, 5, 6, COMPACT_VERSION, OVERLAP_VERSION}
    assert {d[4] for d in jpeg_file_files()} == {3, 5, COMPACT_VERSION}
    assert {d[4:6] for d in metadata_files()} == {b"\x07\x01", b"\x08\x03", b"\x07\x03", b"\x05\x01", b"\x05\x03"}
    assert [d[4:6] for d in lattice_files()] == [b"\x07\x04", b"\x07\x0d", b"\x06\x04", b"\x06\x05"]
    heads = [d[offsets(d)["lattice"]:][:3] for d in lattice_files()]   # subsampling, strengths, table form
    assert (heads[0][0], heads[0][2]) == (0x22, 0) and (heads[1][0], heads[1][2]) == (0, 1)
    wavelet_v2 = [d for d in version_2_files() if isinstance(load_spec(read_header(d).weights_id).table(read_header(d)),
                                                               ContextModel)]
    assert wavelet_v2 or not any(isinstance(load_spec(read_header(d).weights_id).table(read_header(d)), ContextModel)
                                 for d in real_files())
    for data in wavelet_v2:  # the plane-ordered payload really differs from the resolution-ordered one
        v3 = next(d for d in real_files() if replace(read_header(d), version=2) == read_header(data))
        assert unpack(data)[1] != unpack(v3)[1]
        assert np.array_equal(np.asarray(facecodec.decode(data)), np.asarray(facecodec.decode(v3)))


def test_unmutated_files_decode():
    """Every file decodes, at every reduce its weights have. A long twin reads as the same header and payload as its
    compact file, so it decodes to the same image: it is not decoded again."""
    decoded = set()
    for data in all_files():
        where = offsets(data)
        assert data[where["payload"]:where["crc"]] == unpack(data)[1]  # offsets() reads FORMAT.md right
        if unpack(data) in decoded:
            continue
        decoded.add(unpack(data))
        assert decodes_or_refuses(data) is not None
        levels = load_spec(read_header(data).weights_id).family.max_reduce
        for reduce in range(1, 6):
            if reduce <= levels:
                assert decodes_or_refuses(data, reduce) is not None
            else:
                with pytest.raises(FczError, match="full size|decode down to"):
                    facecodec.decode(data, reduce=reduce)


@FUZZ
@given(index=file_index, reduce=st.integers(1, 5), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                               max_size=4), in_payload=st.booleans())
def test_reduced_decodes_of_damaged_files(index, reduce, edits, in_payload):
    """A reduced decode (``reduce`` levels fewer; the wavelet family stops reading its resolution-ordered payload
    early) of a re-sealed file with bytes changed in its payload or anywhere: the property at that reduce."""
    data = pick(index)
    where = offsets(data)
    start = where["payload"] if in_payload and where["crc"] > where["payload"] else 0
    body = bytearray(data[:-4])
    for position, value in edits:
        body[start + position % (len(body) - start)] = value
    decodes_or_refuses(seal(bytes(body)), reduce)


@FUZZ
@given(index=file_index, flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1, max_size=8),
       resealed=st.booleans())
def test_bit_flips(index, flips, resealed):
    data = pick(index)
    body = bytearray(data[:-4] if resealed else data)
    for position, bit in flips:
        body[position % len(body)] ^= 1 << bit
    decodes_or_refuses(seal(bytes(body)) if resealed else bytes(body))


@FUZZ
@given(index=file_index, edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6))
def test_resealed_byte_edits(index, edits):
    body = bytearray(pick(index)[:-4])
    for position, value in edits:
        body[position % len(body)] = value
    decodes_or_refuses(seal(bytes(body)))


@FUZZ
@given(index=file_index, cut=st.integers(0, 10**6), tail=st.binary(max_size=64), where=st.integers(0, 10**6),
       removed=st.integers(0, 16), operation=st.sampled_from(["truncate", "extend", "insert", "delete"]),
       resealed=st.booleans())
def test_truncation_extension_insertion_deletion(index, cut, tail, where, removed, operation, resealed):
    data = pick(index)
    body = data[:-4] if resealed else data
    at = where % (len(body) + 1)
    body = {"truncate": lambda: body[:cut % (len(body) + 1)],
            "extend": lambda: body + tail,
            "insert": lambda: body[:at] + tail + body[at:],
            "delete": lambda: body[:at] + body[at + removed:]}[operation]()
    decodes_or_refuses(seal(body) if resealed else body)


SHAPE_FIELDS = {"width": (0, "<I"), "height": (4, "<I"), "mode": (8, "<B"), "bits": (9, "<B"),
                "pad_right": (10, "<B"), "pad_bottom": (11, "<B"), "channels": (12, "<H"),
                "latent_h": (14, "<H"), "latent_w": (16, "<H"), "quality": (18, "<B")}
INTERESTING = st.sampled_from([0, 1, 2, 7, 8, 9, 23, 24, 25, 255, 256, 2047, 2048, 16383, 16384, 16385,
                               2**16 - 1, 2**31, 2**32 - 1])


@FUZZ
@given(index=st.integers(0, 10**4), word=st.integers(0, 4), value=INTERESTING | st.sampled_from([4, 12, 48, 64, 80, 128]) | st.integers(0, 2**32 - 1),
       reduce=st.integers(0, 4))
def test_resealed_tile_table_edits(index, word, value, reduce):
    """A tiled file (format 4) with one word of its tile table (the side, then 4 lengths) replaced."""
    files = tiled_files()
    data = bytearray(files[index % len(files)])
    struct.pack_into("<I", data, offsets(data)["payload"] + 4 * word, value)
    decodes_or_refuses(seal(bytes(data[:-4])), reduce)


@FUZZ
@given(index=file_index, field=st.sampled_from(sorted(SHAPE_FIELDS)),
       value=INTERESTING | st.integers(0, 2**32 - 1))
def test_resealed_header_field_edits(index, field, value):
    """A field of the long header's shape block (or its quality byte) set to any value."""
    data = bytearray(pick(index, compact=False))
    offset, fmt = SHAPE_FIELDS[field]
    struct.pack_into(fmt, data, offsets(data)["shape"] + offset, value % 256 ** struct.calcsize(fmt))
    decodes_or_refuses(seal(bytes(data[:-4])))


# the compact header's bytes: each registered weights' number, 0 and the first unassigned one (refused), the flags in
# every combination of the four defined bits (tiles with a JPEG source block refused), quality 0 (refused), 1, 100, 101
COMPACT_VALUES = st.sampled_from(sorted({*range(len(REGISTRY) + 2), *range(16), 0x10, 0x80, 100, 101, 255}))


@FUZZ
@given(index=file_index, field=st.sampled_from(["flags", "number", "quality"]),
       value=COMPACT_VALUES | st.integers(0, 255), toggle=st.booleans())
def test_resealed_compact_header_byte_edits(index, field, value, toggle):
    """The flags, the registry number (another weights' tables then read the payload) or the quality level of a
    compact header (format 7), set to ``value`` or (``toggle``) XORed with it: e.g. one flag bit flipped."""
    data = bytearray(pick(index, compact=True))
    at = {"flags": 5, "number": 6, "quality": offsets(data)["quality"]}[field]
    data[at] = data[at] ^ value if toggle else value
    decodes_or_refuses(seal(bytes(data[:-4])))


@FUZZ
@given(index=file_index, side=st.sampled_from(["width", "height"]),
       value=INTERESTING | st.integers(0, 2**28 - 1), size=st.sampled_from([None, None, 1, 2, 3, 4]),
       raw=st.none() | st.binary(min_size=1, max_size=4))
def test_resealed_compact_side_edits(index, side, value, size, raw):
    """One side's varint of a compact header rewritten: another value in its one spelling (``size`` None), the same
    spelled in ``size`` bytes (needless zero groups, 4 bytes, high bits lost), or ``raw`` bytes (unterminated, so
    running into the next field). A side is read only in its shortest spelling, and only within 1..16384."""
    data = bytearray(pick(index, compact=True))
    where = offsets(data)
    spelling = varint(value, size) if raw is None else raw
    data[where[side]:where["height" if side == "width" else "quality"]] = spelling
    damaged = seal(bytes(data[:-4]))
    decodes_or_refuses(damaged)
    if raw is None:
        with contextlib.suppress(FczError):
            read = getattr(read_header(damaged), side)
            assert spelling == varint(read) and 1 <= read <= MAX_SIDE


@FUZZ
@given(index=file_index, prefix=st.sampled_from([(4, 1), (4, 2), (4, 3), (4, 4), (4, 5), (4, 6), (4, 7), (4, 8),
                                                  (5, 0), (5, 1), (6, 0), (6, 1), (6, 200), (6, 255)]),
       length=INTERESTING | st.integers(0, 2**32 - 1), which=st.sampled_from(["prefix", "payload length"]))
def test_resealed_prefix_and_payload_length_edits(index, prefix, length, which):
    """The version, flags and weights id length (the compact header's registry number) of any file: either header's
    bytes then read in the other's layout too; or the long header's payload length."""
    data = bytearray(pick(index, compact=False if which == "payload length" else None))
    if which == "prefix":
        data[prefix[0]] = prefix[1]
    else:
        struct.pack_into("<I", data, offsets(data)["length"], length)
    decodes_or_refuses(seal(bytes(data[:-4])))


@FUZZ
@given(index=file_index, edits=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 255)), min_size=1, max_size=3),
       entry=st.integers(0, 2))
def test_resealed_metadata_block_edits(index, edits, entry):
    """The count, an entry's kind or length bytes (``entry``: which entry's 5 bytes the positions count from)."""
    files = metadata_files()
    data = bytearray(files[index % len(files)])
    at = offsets(data)["metadata"]
    starts = [at + 1]
    for _ in range(data[at] - 1):
        starts.append(starts[-1] + 5 + struct.unpack_from("<I", data, starts[-1] + 1)[0])
    for position, value in edits:
        where = at if position == 0 else starts[entry % len(starts)] + (position - 1) % 5
        data[where] = value
    decodes_or_refuses(seal(bytes(data[:-4])))


@FUZZ
@given(index=file_index, edits=st.lists(st.tuples(st.integers(0, 130), st.integers(0, 255)), min_size=1, max_size=3))
def test_resealed_jpeg_source_block_edits(index, edits):
    """Any byte of the JPEG source block (subsampling, strengths, form, quality or steps) or just past it."""
    files = lattice_files()
    data = bytearray(files[index % len(files)])
    at = offsets(data)["lattice"]
    for position, value in edits:
        data[min(at + position, len(data) - 5)] = value
    decodes_or_refuses(seal(bytes(data[:-4])))


@FUZZ
@given(index=file_index, channel=st.integers(0, 23), bound=st.sampled_from([0, 4]),
       value=st.floats(width=32, allow_nan=True, allow_infinity=True))
def test_resealed_quantizer_range_edits(index, channel, bound, value):
    data = bytearray(pick_with_ranges(index))
    struct.pack_into("<f", data, offsets(data)["ranges"] + 8 * channel + bound, value)
    decodes_or_refuses(seal(bytes(data[:-4])))


@FUZZ
@given(index=file_index, edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       fill=st.sampled_from([None, 0x00, 0xFF]))
def test_resealed_payload_corruption_reaches_the_range_decoder(index, edits, fill):
    """The header stays valid and the CRC is fixed, so the damage reaches the range decoder (and the network)."""
    data = pick(index)
    where = offsets(data)
    payload = bytearray(data[where["payload"]:where["crc"]])
    if fill is not None:
        payload[:] = bytes([fill]) * len(payload)
    for position, value in edits:
        payload[position % len(payload)] = value
    damaged = seal(data[:where["payload"]] + bytes(payload))
    assert facecodec.read_header(damaged) == facecodec.read_header(data)
    decodes_or_refuses(damaged)


@FUZZ
@given(index=file_index, compact=st.booleans(), words=st.integers(-40, 8), zeros=st.booleans())
def test_resealed_payload_of_another_length(index, compact, words, zeros):
    """Payload shortened (from either end) or lengthened, with the length field (the long header's; the compact
    header's payload runs to the checksum) and the CRC kept consistent."""
    data = pick(index, compact)
    where = offsets(data)
    payload = data[where["payload"]:where["crc"]]
    if words >= 0:
        payload += (bytes(4) if zeros else b"\x5a\xa5\x3c\xc3") * words
    else:
        payload = payload[:4 * words] if zeros else payload[-4 * words:]
    decodes_or_refuses(seal(with_payload(data, payload)))


@FUZZ
@given(first=file_index, second=file_index, compact=st.tuples(st.booleans(), st.booleans()),
       head=st.integers(0, 10**6), tail=st.integers(0, 10**6), resealed=st.booleans(), structured=st.booleans())
def test_spliced_files(first, second, compact, head, tail, resealed, structured):
    """The head of one file and the tail of another, of either header (``compact``): at raw cut points, or one
    header with another's payload."""
    a, b = pick(first, compact[0]), pick(second, compact[1])
    if structured:
        body = with_payload(a, b[offsets(b)["payload"]:-4])
    else:
        body = a[:head % (len(a) + 1)] + b[tail % (len(b) + 1):]
        body = body[:-4] if resealed else body
    decodes_or_refuses(seal(body) if resealed or structured else body)


@FUZZ
@given(index=file_index, compact=st.booleans(), width=st.integers(1, 16384), height=st.integers(1, 16384),
       small=st.booleans(), stride=st.sampled_from(["own", "own", "own", 8, 16, 1, 4, 32]), zero_payload=st.booleans())
def test_resealed_resize_that_still_tiles(index, compact, width, height, small, stride, zero_payload):
    """A header claiming another image size with every field consistent with it (in the long header mostly at the
    file's own stride: 8, 16, or 1 for the wavelet family; the compact header has only the sides, its latent grid is
    theirs at stride 1). A claim far beyond what the payload can hold (twice the bits that even its cheapest message
    would take) must be refused, and at once. A smaller one may decode: past the end of its data the range decoder
    reads zeros (the random-symbol files' long payloads hold claims of up to 360 latent pixels, e.g. 46 x 357
    pixels at stride 16)."""
    if small:
        width, height = width % 96 + 1, height % 96 + 1
    data = bytearray(pick(index, compact))
    where = offsets(data)
    stride = 1 if compact else read_header(bytes(data)).stride if stride == "own" else stride
    h, w = -(-height // stride), -(-width // stride)
    if compact:
        data[where["width"]:where["quality"]] = varint(width) + varint(height)
    else:
        mode, bits, _, _, channels, _, _ = struct.unpack_from("<BBBBHHH", data, where["shape"] + 8)
        struct.pack_into("<IIBBBBHHH", data, where["shape"], width, height, mode, bits, w * stride - width,
                         h * stride - height, channels, h, w)
    if zero_payload:  # the range decoder reads zeros past its data: the shape of the fuzzer's first find
        data[offsets(data)["payload"]:-4] = bytes(len(data) - 4 - offsets(data)["payload"])
    started = time.process_time()
    image = decodes_or_refuses(seal(bytes(data[:-4])))
    seconds = time.process_time() - started
    header, payload = unpack(pick(index, compact))
    model = load_spec(header.weights_id).table(header)
    if model is None:   # a JPEG's own coefficients: the JPEG inside states its size, and no other is taken
        assert image is None or (width, height) == (header.width, header.height)
        return
    if isinstance(model, ContextModel):  # the wavelet family: its own bound (FORMAT.md), per class of values
        cheapest_bits = wb.min_payload_bits(model, (h, w), header.mode)
    else:
        cheapest_bits = min_payload_bits(model, h * w)
    if cheapest_bits > 2 * (8 * len(payload) + _SEAL_SLACK_BITS):
        assert image is None and seconds < 2


@FUZZ
@given(bits=st.integers(1, 8), c=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                      min_size=1, max_size=4))
def test_handbuilt_files_with_random_tables(bits, c, h, w, seed, edits):
    """pack + encode_symbols with random tables (as in test_bitstream), edited and re-sealed: the bitstream
    half of decode either gives C x h x w symbols in the alphabet, or raises FczError."""
    rng = np.random.default_rng(seed)
    tables = rng.integers(1, 1000, size=(c, 2**bits))
    header = FczHeader("test-c2-v1", 8 * w - 3, 8 * h - 5, "RGB", bits, 3, 5, (c, h, w), ((-1.0, 1.0),) * c)
    body = bytearray(pack(header, encode_symbols(rng.integers(0, 2**bits, size=(c, h, w)), tables))[:-4])
    for position, value in edits:
        body[position % len(body)] = value
    try:
        parsed, payload = unpack(seal(bytes(body)))
        if parsed.bits != bits or parsed.latent_shape[0] != c:
            return  # the codec would look up other tables (or refuse other channel counts) here
        symbols = decode_symbols(payload, tables, parsed.latent_shape[1:])
    except FczError:
        return
    assert symbols.shape == parsed.latent_shape and symbols.dtype == np.int32
    assert symbols.min() >= 0 and symbols.max() < 2**bits


def _random_context_model(rng: np.random.Generator) -> ContextModel:
    """A wavelet context model of either scheme with random counts, context weights and bucket (and sign)
    thresholds (as a weights file holds)."""
    scheme = wc.SCHEMES[int(rng.integers(1, 3))]
    counts = rng.integers(1, 1000, size=scheme.table_shape)
    if rng.random() < 0.5:  # some very skewed buckets: the cheapest letters cost almost nothing
        counts[..., wb.DIRECT] = rng.integers(1, 10**6, size=scheme.table_shape[:-1])
    weights = rng.integers(0, 8, size=scheme.weights_shape)
    thresholds = np.sort(rng.integers(0, 200, size=scheme.thresholds_shape), axis=-1)
    signs = {}
    if scheme.sign_contexts > 1:
        signs["sign_weights"] = rng.integers(-16, 17, size=scheme.sign_weights_shape).astype(np.int32)
        signs["sign_thresholds"] = np.sort(rng.integers(1, 60, size=scheme.sign_thresholds_shape), axis=-1).astype(np.int32)
    return ContextModel(counts.astype(np.int32), weights.astype(np.int32), thresholds.astype(np.int32), scheme, **signs)


@FUZZ
@given(h=st.integers(1, 20), w=st.integers(1, 20), mode=st.sampled_from(["RGB", "L"]), resolution_order=st.booleans(),
       reduce=st.integers(0, 4), seed=st.integers(0, 2**32 - 1),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
       cut=st.integers(0, 10**6), shorten=st.booleans())
def test_handbuilt_wavelet_payloads_with_random_tables(h, w, mode, resolution_order, reduce, seed, edits, cut, shorten):
    """encode_planes with a random context model and random signed planes (escapes included), then bytes edited
    or words cut off: decode_planes (either payload order, a reduce where the order allows one) gives
    3 x H x W int32 planes within the format's range, zero where nothing is coded, or raises FczError; the
    unedited payload decodes to the planes coded."""
    rng = np.random.default_rng(seed)
    model = _random_context_model(rng)
    header = FczHeader("test-wavelet", w, h, mode, 6, 0, 0, (3, h, w), (), 1)
    planes = random_symbols(rng, model, header)
    payload = wb.encode_planes(planes, model, mode, resolution_order=resolution_order)
    reduce = reduce if resolution_order else 0
    if not edits and not shorten:
        decoded = wb.decode_planes(payload, model, (h, w), mode, resolution_order=resolution_order)
        assert np.array_equal(decoded, planes)
        return
    damaged = bytearray(payload)
    for position, value in edits:
        if damaged:
            damaged[position % len(damaged)] = value
    if shorten:
        damaged = damaged[:4 * (cut % (len(damaged) // 4 + 1))]
    try:
        decoded = wb.decode_planes(bytes(damaged), model, (h, w), mode, resolution_order=resolution_order,
                                   reduce=reduce)
    except FczError:
        return
    assert decoded.shape == (3, h, w) and decoded.dtype == np.int32
    assert np.abs(decoded).max(initial=0) <= wb.MAX_SYMBOL
    assert not decoded[ws.channels_coded(mode):].any()
    for level, orientation, rows, cols in ws.subbands(h, w):
        if orientation != "LL" and level <= reduce:
            assert not decoded[:, rows, cols].any()


# --------------------------------------------------------------------------- regressions for fixed failures

def _tiny_file_claiming(width: int, height: int, payload: bytes) -> bytes:
    """The fuzzer's find: a small real file re-labelled as a large image, every header field consistent."""
    data = bytearray(real_files()[1])  # 16 x 24 greyscale, 1 bit
    where = offsets(data)
    h, w = -(-height // 8), -(-width // 8)
    struct.pack_into("<IIBBBBHHH", data, where["shape"], width, height, 1, 1, 8 * w - width, 8 * h - height,
                     where["channels"], h, w)
    return seal(with_payload(bytes(data), payload))


@pytest.fixture(scope="session")
def encoded_corpus() -> tuple[bytes, ...]:
    """real_files(), encoded (seconds when a test runs alone) and each decoded once, so that the weights they name
    are loaded: outside any test's timed part."""
    files = real_files()
    for data in files:
        facecodec.decode(data, device="cpu")
    return files


@pytest.mark.parametrize("zero_bytes", [0, 16, 4096])
@pytest.mark.parametrize("side", [1024, 16384])
def test_tiny_file_claiming_a_huge_image_is_refused_at_once(encoded_corpus, side, zero_bytes):
    """Found by fuzzing (benchmarks/fuzz/crashes/timeout-*): the range decoder reads zeros past the end of
    its data and, from an all-zero state, decodes any number of symbols without error, so a 253-byte
    file claiming 16384 x 16384 pixels went on to run the network on 268 megapixels. The payload must
    now be long enough to hold the symbols the header promises. Timed: the refusal alone, not the making of
    the file (encoded_corpus)."""
    data = _tiny_file_claiming(side, side, bytes(zero_bytes))
    started = time.process_time()
    with pytest.raises(FczError, match="too short to hold"):  # with no pixel limit, which would refuse it first
        facecodec.decode(data, max_pixels=None)
    assert time.process_time() - started < 1


def test_fuzzer_input_with_zero_payload_is_refused():
    """benchmarks/fuzz/crashes/timeout-9a411edb9fc9.fcz: an 8 x 8 greyscale 2-bit file (its payload 16 zero bytes)
    re-labelled as 3253 x 849, which decoded in full before the fix."""
    data = bytearray(facecodec.encode(Image.fromarray(astronaut()[:8, :8]).convert("L"), bits=2))
    where = offsets(data)
    struct.pack_into("<IIBBBBHHH", data, where["shape"], 3253, 849, 1, 2, 3, 7, where["channels"], 107, 407)
    with pytest.raises(FczError, match="too short to hold"):
        facecodec.decode(seal(bytes(data[:-4])))


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), c=st.integers(1, 4), h=st.integers(1, 30), w=st.integers(1, 30),
       dominant=st.integers(1, 10**9), skewed=st.booleans(), likeliest=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_no_encoder_output_is_shorter_than_the_refusal_bound(bits, c, h, w, dominant, skewed, likeliest, seed):
    """The fix must never refuse a real file: even the cheapest message (every symbol the likeliest one)
    under very skewed tables codes to at least the bound the decoder enforces."""
    rng = np.random.default_rng(seed)
    tables = rng.integers(1, 5000, size=(c, 2**bits))
    if skewed:
        tables[np.arange(c), rng.integers(0, 2**bits, size=c)] = dominant
    if likeliest:
        symbols = np.broadcast_to(tables.argmax(axis=1)[:, None, None], (c, h, w)).copy()
    else:
        symbols = rng.integers(0, 2**bits, size=(c, h, w))
    payload = encode_symbols(symbols, tables)
    assert 8 * len(payload) >= min_payload_bits(tables, h * w) - _SEAL_SLACK_BITS
    assert np.array_equal(decode_symbols(payload, tables, (h, w)), symbols)


@pytest.mark.parametrize("bits", range(1, 9))
def test_flat_images_still_decode(bits):
    """Flat images give the shortest real payloads there are; the bound must let them through."""
    for value in (0, 255):
        data = facecodec.encode(np.full((64, 72, 3), value, np.uint8), bits=bits)
        assert facecodec.decode(data).size == (72, 64)


def test_payload_running_into_the_checksum_is_called_truncated():
    """Found by fuzzing: a file 1..3 bytes short of the payload length it states (re-sealed) was refused
    as "corrupt file: -2 unexpected bytes after the payload"; it is a truncated file."""
    data = real_files()[0]
    for missing in range(1, 9):
        with pytest.raises(FczError, match="truncated file"):
            facecodec.decode(seal(data[:-4 - missing]))
