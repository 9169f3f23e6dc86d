"""Conformance: what every installed codec weights must do, whatever their family.

Each test runs once per weights id in ``facecodec.zoo.pixel_codec_ids()``: a new weights file joins the suite by
being installed. (The coder of a JPEG file's own coefficients takes nothing but a JPEG: tests/test_jpeg_file.py.) The family's own interface says what to try (``family.option``, ``settings``, ``default``,
``efforts``, ``max_reduce``, ``sweep()``); where weights measured differently, their own number stands in a
table below, keyed by weights id, with the measurement beside it. What is particular to one family (the wavelet
transform, its contexts, its post-filter) is in test_wavelet_family.py; the API (inputs, errors, Pillow) in
test_codec.py.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import facecodec
from facecodec import codec, zoo
from facecodec.bitstream import FczError, pack, unpack
from facecodec.bitstream import entropy as per_channel
from facecodec.bitstream import wavelet_payload as wb
from facecodec.bitstream.contexts import ContextModel
from facecodec.image_io import open_image
from facecodec.metrics import psnr
from facecodec.ratecontrol import SizeTarget
from facecodec.reading import inspect
from facecodec.arrays import padded_array
from facecodec.zoo import load_spec, load_weights, pixel_codec_ids

WEIGHTS = pixel_codec_ids()
SEARCHING = [w for w in WEIGHTS if len(load_spec(w).family.efforts) > 1]   # an encoder search (effort > 0)
REDUCING = [w for w in WEIGHTS if load_spec(w).family.max_reduce > 0]      # reduced decodes (fcz decode --scale)
SEVERAL_SETTINGS = [w for w in WEIGHTS if len(load_spec(w).family.settings) > 1]   # not the lossless weights' one

# Settings round-tripped besides the first, the default and the last: what earlier per-version tests covered.
EXTRA_SETTINGS = {
    "wavelet-v0": (2, 3, 4, 6, 7),      # with 1, 5, 8: every quality level
    "wavelet-v2": (4, 10, 37, 73),      # below the first trained level, on one, and between levels
    "theis-c24-v1": (3,),               # as test_codec.py checked its symbols (27.1 dB on the face)
}
# PSNR floors on the astronaut crop (160x144) at the default effort: {setting: floor}, each a sweep() setting.
PSNR_FLOORS_DB = {
    "theis-c24-v1": {6: 27.0},                      # measured 28.35 dB (28.3 when first set)
    "gained-q8-v1": {1: 24.9, 5: 27.8, 8: 28.2},    # measured 25.93, 28.86, 29.27 dB
    "wavelet-v0": {1: 27.8, 5: 38.2, 8: 48.2},      # measured 28.52, 39.02, 49.09 dB (28.81, 39.22, 49.20 at
                                                    # effort 0); quality 8 reaches 48 dB through the whole codec
    "wavelet-v1": {1: 26.2, 50: 37.9, 100: 57.7},   # measured 27.25, 38.95, 58.74 dB
    # the default weights (quality 50 the default): 0.35-0.45 dB under the measurement, so that a 2.5x coarser
    # quantization step fails at every one (it measured 22.07, 34.12 and 49.69 dB)
    "wavelet-v2": {1: 25.6, 50: 38.6, 100: 58.2},   # measured 25.95, 38.96, 58.65 dB
    "wavelet-v3": {1: 26.0, 50: 38.8, 100: 57.9},   # measured 26.44, 39.17, 58.34 dB
    "lossless-v1": {1: float("inf")},               # exact: every pixel back (tests/test_lossless.py)
}
# Weights whose PSNR stops rising before their last setting: (the setting it rises strictly up to, how far it
# may then dip below that setting's, in dB). Everywhere else it rises strictly along the whole sweep.
PSNR_SATURATES = {
    "theis-c24-v1": (6, 0.05),   # measured 28.35, 28.34, 28.35 dB at 6, 7, 8 bits: 24 channels saturate
}
# A greyscale file is smaller than the colour one, except where the family codes grey as three equal planes.
GREY_NOT_SMALLER = {
    "theis-c24-v1",   # measured 754 bytes grey, 750 colour at 1 bit (odd_face)
}
# Reduced decodes against an area-averaged downscale of the picture: PSNR floors for reduce = 1, 2, 3, 4.
REDUCED_FLOORS_DB = {
    "wavelet-v0": (20, 18, 16, 14),           # 22 - 2 x reduce, as first set (measured 29.98, 28.29, 24.60, 23.94)
    "wavelet-v1": (29.0, 27.3, 23.6, 22.9),   # measured 29.98, 28.29, 24.60, 23.94 dB
    "wavelet-v2": (29.0, 27.3, 23.6, 22.9),   # measured 29.97, 28.30, 24.60, 23.94 dB
    "wavelet-v3": (27.1, 25.8, 22.7, 22.0),   # measured 28.09, 26.78, 23.69, 23.00 dB: the learned update steps
                                              # shift the low band (test_wavelet_family)
    "lossless-v1": (27.2, 24.0, 20.0, 18.1),  # measured 28.21, 25.04, 21.03, 19.10 dB: the 5/3 low band, as JPEG
                                              # 2000's reversible thumbnails, aliases more than the 9/7's
}
# Size targets: the settings whose file a target halfway to the next setting's must give back (the default's
# where not named).
TARGET_SETTINGS = {
    "wavelet-v0": (2, 5, 7),
}


def spread(family) -> list[int]:
    """The first, the default and the last setting."""
    return sorted({family.settings[0], family.default, family.settings[-1]})


def keyword(family, setting: int) -> dict[str, int]:
    """The encode keyword that picks ``setting``: quality=... or bits=..."""
    return {family.option: setting}


def round_trip_cases() -> list:
    """(weights id, setting): the first, default and last setting of every weights, and their extra settings."""
    return [pytest.param(weights_id, setting, id=f"{weights_id}-{setting}") for weights_id in WEIGHTS
            for setting in sorted({*spread(load_spec(weights_id).family), *EXTRA_SETTINGS.get(weights_id, ())})]


@pytest.fixture(scope="module")
def sweep_files(face):
    """weights id -> {setting: the face's file} over the family's sweep(), encoded once for the module."""
    cache: dict[str, dict[int, bytes]] = {}

    def files(weights_id: str) -> dict[int, bytes]:
        if weights_id not in cache:
            family = load_spec(weights_id).family
            cache[weights_id] = {s: facecodec.encode(face, weights_id=weights_id, **keyword(family, s))
                                 for s in family.sweep()}
        return cache[weights_id]
    return files


# --- round trips ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights_id, setting", round_trip_cases())
def test_settings_and_efforts_round_trip_odd_sizes_and_greyscale(odd_face, weights_id, setting):
    """At every effort: the header says what was coded, the decoder gets back exactly the encoder's symbols, and
    colour and greyscale pictures of a size no stride divides come back at their size and mode."""
    spec, weights = load_spec(weights_id), load_weights(weights_id)
    family = spec.family
    height, width = odd_face.shape[:2]
    grey = odd_face[..., 1].copy()
    x, _, _ = padded_array(open_image(odd_face)[0], weights.stride)  # the encoder's own steps, up to its features
    y = codec.analyse(weights, x)
    for effort in family.efforts:
        data = facecodec.encode(odd_face, weights_id=weights_id, effort=effort, **keyword(family, setting))
        header, payload = unpack(data)
        assert (header.weights_id, header.width, header.height, header.mode) == (weights_id, width, height, "RGB")
        assert header.latent_shape == (spec.channels, -(-height // spec.stride), -(-width // spec.stride))
        assert (header.pad_right, header.pad_bottom) == (-width % spec.stride, -height % spec.stride)
        assert family.setting_of(header) == setting
        assert header.bits == family.alphabet(setting).bit_length() - 1

        symbols, _ = family.quantize(weights.model, y, setting, effort, weights.entropy_tables)
        decoded_symbols = family.entropy_decode(payload, spec.table(header), header)
        assert decoded_symbols.shape == symbols.shape[1:] and np.array_equal(decoded_symbols, symbols[0])
        # a real picture's symbols, not a constant that would match anyway
        assert len(np.unique(decoded_symbols)) >= min(3, family.alphabet(setting))

        decoded = facecodec.decode(data)
        assert decoded.size == (width, height) and decoded.mode == "RGB"
        grey_data = facecodec.encode(grey, weights_id=weights_id, effort=effort, **keyword(family, setting))
        grey_decoded = facecodec.decode(grey_data)
        assert grey_decoded.size == (width, height) and grey_decoded.mode == "L"
        if weights_id not in GREY_NOT_SMALLER:
            assert len(grey_data) < len(data), (effort, len(grey_data), len(data))


@pytest.mark.parametrize("weights_id", WEIGHTS)
def test_tiny_images_round_trip(weights_id):
    family = load_spec(weights_id).family
    for shape in [(1, 1), (1, 5), (9, 1), (3, 2)]:
        tiny = np.random.default_rng(5).integers(0, 256, (*shape, 3), dtype=np.uint8)
        data = facecodec.encode(tiny, weights_id=weights_id, **keyword(family, family.settings[-1]))
        assert facecodec.decode(data).size == shape[::-1]


@pytest.mark.parametrize("weights_id", WEIGHTS)
def test_symbols_do_not_depend_on_torch_threads(face, weights_id, keep_torch_threads):
    family = load_spec(weights_id).family
    files = []
    for n in (1, 2):
        torch.set_num_threads(n)
        files.append(facecodec.encode(face, weights_id=weights_id, **keyword(family, family.default)))
    assert files[0] == files[1]


# --- rate and distortion --------------------------------------------------------------------------------

@pytest.mark.parametrize("weights_id", WEIGHTS)
def test_sizes_and_psnr_rise_along_the_sweep(face, weights_id, sweep_files):
    family = load_spec(weights_id).family
    files = sweep_files(weights_id)
    settings = list(files)
    assert settings == family.sweep()
    sizes, scores = [], []
    for setting, data in files.items():
        assert family.setting_of(facecodec.read_header(data)) == setting
        decoded = facecodec.decode(data)
        assert decoded.size == (face.shape[1], face.shape[0]) and decoded.mode == "RGB"
        sizes.append(len(data))
        scores.append(psnr(face, decoded))
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes
    top, dip = PSNR_SATURATES.get(weights_id, (settings[-1], 0.0))
    rising = scores[:settings.index(top) + 1]
    assert all(a < b for a, b in zip(rising, rising[1:])), scores
    assert all(score >= rising[-1] - dip for score in scores[len(rising):]), scores
    for setting, floor in PSNR_FLOORS_DB[weights_id].items():
        assert scores[settings.index(setting)] >= floor, (setting, scores)


def test_every_installed_weights_have_their_measured_floors():
    """Weights join the suite by being installed; their measured floors join these tables with them."""
    assert set(WEIGHTS) <= set(PSNR_FLOORS_DB), "measure the new weights' PSNR and add floors"
    assert set(REDUCING) <= set(REDUCED_FLOORS_DB), "measure the new weights' reduced decodes and add floors"


@pytest.mark.parametrize("weights_id", SEARCHING)
def test_the_encoder_search_saves_bits_and_keeps_quality(face, weights_id):
    family = load_spec(weights_id).family
    sizes, scores = {}, {}
    for effort in (0, family.efforts[-1]):
        data = facecodec.encode(face, weights_id=weights_id, effort=effort, **keyword(family, family.default))
        sizes[effort], scores[effort] = len(data), psnr(face, facecodec.decode(data))
    best = family.efforts[-1]
    assert sizes[best] < sizes[0] and scores[best] > scores[0] - 0.3, (sizes, scores)


# --- payloads -------------------------------------------------------------------------------------------

def lower_bound_bits(table, header) -> float:
    """No payload coding ``header``'s symbols with ``table`` is shorter than this many bits."""
    shape = header.latent_shape[1:]
    if isinstance(table, ContextModel):   # context-adaptive (the wavelet family)
        return wb.min_payload_bits(table, shape, header.mode)
    return per_channel.min_payload_bits(table, shape[0] * shape[1])


@pytest.mark.parametrize("weights_id", WEIGHTS)
def test_payload_bound_holds_and_a_cut_payload_is_refused(weights_id, sweep_files):
    spec = load_spec(weights_id)
    files = sweep_files(weights_id)
    for setting, data in files.items():
        header, payload = unpack(data)
        table = spec.table(header)
        assert 8 * len(payload) >= lower_bound_bits(table, header), setting
        spec.family.check_payload(payload, table, header)   # the decoder's check accepts every real file
    for setting in (spec.family.sweep()[0], spec.family.sweep()[-1]):
        header, payload = unpack(files[setting])
        cut = payload[:len(payload) // 16 * 4]
        with pytest.raises(FczError):
            spec.family.entropy_decode(cut, spec.table(header), header)
        with pytest.raises(FczError, match="too short|does not decode|outside the format"):
            facecodec.decode(pack(header, cut))


@pytest.mark.parametrize("weights_id", WEIGHTS)
def test_damaged_files_are_fcz_errors(face, weights_id):
    spec = load_spec(weights_id)
    family = spec.family
    data = facecodec.encode(face, weights_id=weights_id)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(FczError, match="checksum"):
        facecodec.decode(bytes(flipped))
    header, payload = unpack(data)
    beyond = replace(header, **{family.option: family.settings[-1] + 1})
    with pytest.raises(FczError, match="quantizer bits" if family.option == "bits" else "no quantizer setting"):
        facecodec.decode(pack(beyond, payload))
    channels, h, w = header.latent_shape
    more = replace(header, latent_shape=(channels + 1, h, w),
                   channel_ranges=header.channel_ranges + header.channel_ranges[:1])
    with pytest.raises(FczError, match="latent shape"):
        facecodec.decode(pack(more, payload))
    # a small file claiming a large image: refused by its payload's length, before any range decoding
    s = spec.stride
    bomb = pack(replace(header, width=4000, height=4000, latent_shape=(channels, 4000 // s, 4000 // s)), payload)
    with pytest.raises(FczError, match="too short"):
        inspect(bomb)


# --- what a family offers, and refuses ------------------------------------------------------------------

@pytest.mark.parametrize("weights_id", WEIGHTS)
def test_efforts_and_reductions_a_family_lacks_are_refused(weights_id):
    family = load_spec(weights_id).family
    image = np.zeros((32, 32, 3), np.uint8)
    first, last = family.efforts[0], family.efforts[-1]
    message = "no encoder search" if len(family.efforts) == 1 else f"between {first} and {last}"
    with pytest.raises(FczError, match=message):
        facecodec.encode(image, weights_id=weights_id, effort=last + 1)
    with pytest.raises(TypeError, match="effort"):
        facecodec.encode(image, weights_id=weights_id, effort=1.0)
    data = facecodec.encode(image, weights_id=weights_id)
    message = "only at full size" if not family.max_reduce else f"down to 1/{2 ** family.max_reduce} of"
    with pytest.raises(FczError, match=message):
        facecodec.decode(data, reduce=family.max_reduce + 1)


@pytest.mark.parametrize("weights_id", REDUCING)
def test_reduced_decodes_match_the_full_coefficients_and_are_low_pass_views(odd_face, weights_id):
    """A reduced decode's symbols give the thumbnail the full symbols give, at the right size, close to an
    area-averaged downscale of the picture."""
    spec, weights = load_spec(weights_id), load_weights(weights_id)
    family = spec.family
    data = facecodec.encode(odd_face, weights_id=weights_id)
    header, payload = unpack(data)
    table = spec.table(header)
    full = family.entropy_decode(payload, table, header)
    height, width = odd_face.shape[:2]
    for reduce in range(1, family.max_reduce + 1):
        part = family.entropy_decode(payload, table, header, reduce=reduce)
        expected, got = (codec.synthesise(weights, family.dequantize(weights.model, symbols, header), reduce)
                         for symbols in (full, part))
        assert np.array_equal(got, expected), reduce
        small = facecodec.decode(data, reduce=reduce)
        assert small.size == (-(-width // 2 ** reduce), -(-height // 2 ** reduce))
        assert np.array_equal(np.asarray(small), got[0, :, :small.size[1], :small.size[0]].transpose(1, 2, 0))
        reference = np.asarray(Image.fromarray(odd_face).resize(small.size, Image.Resampling.BOX))
        assert psnr(reference, small) > REDUCED_FLOORS_DB[weights_id][reduce - 1], reduce
        # The thumbnail keeps the picture's brightness (the default weights' were 0.7 levels off at 1/4 here, 2.6 at
        # 1/8). Not a learned lifting's: wavelet-v3's level-1 residuals, which a thumbnail skips, move its low band
        # by about 4 levels (documented in docs/cli.md, "Thumbnails").
        # Nor the lossless weights': their thumbnails are the 5/3 low band as JPEG 2000's reversible path gives it.
        if reduce <= 3 and not family.lossless and not zoo.manifest_entry(weights_id)["model"].get("lifting_levels"):
            assert abs(np.asarray(small, np.float64).mean() - odd_face.mean()) < 0.5, reduce


# --- size targets (fcz encode --size / --bpp) -----------------------------------------------------------

@pytest.mark.parametrize("weights_id", SEVERAL_SETTINGS)
def test_a_target_size_gets_the_best_setting_that_fits(odd_face, weights_id):
    family = load_spec(weights_id).family

    def encoded(setting: int) -> bytes:
        return facecodec.encode(odd_face, weights_id=weights_id, **keyword(family, setting))

    chosen = TARGET_SETTINGS.get(weights_id, (family.default,))
    sizes = {s: len(encoded(s)) for s in sorted({*chosen, *(s + 1 for s in chosen)})}
    height, width = odd_face.shape[:2]
    for i, setting in enumerate(chosen):
        assert sizes[setting] < sizes[setting + 1]
        target = (sizes[setting] + sizes[setting + 1]) // 2   # between two settings: the lower must come back
        if i == len(chosen) // 2:
            # the middle one as bits per pixel, half a byte above the target: the same limit through the
            # conversion (a rate exactly at a size may lose the last byte to the float: 8 x 7632 / (144 x 160)
            # bpp allows 7631 bytes)
            bpp = 8 * (target + 0.5) / (width * height)
            assert SizeTarget(bpp=bpp).limit(width, height) == target
            data = facecodec.encode(odd_face, weights_id=weights_id, bpp=bpp)
        else:
            data = facecodec.encode(odd_face, weights_id=weights_id, size=target)
        assert len(data) == sizes[setting] and family.setting_of(facecodec.read_header(data)) == setting
    with pytest.raises(FczError, match=f"no {family.noun} fits in 100 bytes"):
        facecodec.encode(odd_face, weights_id=weights_id, size=100)
    with pytest.raises(FczError, match="not several"):
        facecodec.encode(odd_face, weights_id=weights_id, size=5000, **keyword(family, family.default))
    with pytest.raises(FczError, match="bpp must be"):
        facecodec.encode(odd_face, weights_id=weights_id, bpp=0)
