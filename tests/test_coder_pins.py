"""Pinned outputs of the entropy coders and of the encoder's search, for fixed integer inputs.

A change that encoder and decoder share (a context bucket one off, a neighbour left out of a feature,
another model construction) still round-trips, so every round-trip test passes; only the bytes
change, and with them every file written before. These pins see it: SHA-256 of payloads coded
from fixed integer planes (no network, no float: the same on any machine), and the decisions of
the rate-distortion search (facecodec.rdoq) on fixed coefficients. A deliberate change of the
format or the search updates the pins (and, for payloads, needs a new format version or new
weights: FORMAT.md, Compatibility). benchmarks/mutation_check.py shows these tests catch such changes.
"""
from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import pytest
from skimage.data import astronaut

from facecodec import rdoq
from facecodec.bitstream import decode_symbols, encode_symbols
from facecodec.bitstream import subbands
from facecodec.bitstream import wavelet_payload as wp
from facecodec.zoo import load_spec

STEPS = (6, 8, 10, 12)   # per level 1..4, in the integer Haar's units
LL_STEP = 4


def haar_planes(rgb: np.ndarray, divide: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """An RGB picture -> ``3 x H x W`` planes in Mallat layout (FORMAT.md, Symbols): an integer Haar transform of
    an integer colour transform, each band divided by its step with ``divide``. Integers only up to the division."""
    rgb = rgb.astype(np.int64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    height, width = r.shape
    hs, ws = subbands.level_sizes(height), subbands.level_sizes(width)
    out = []
    for plane in ((r + 2 * g + b) // 4 - 128, b - g, r - g):
        bands = {}
        low = plane
        for level in range(1, subbands.LEVELS + 1):
            n0, m0, n1, m1 = hs[level - 1], ws[level - 1], hs[level], ws[level]
            p = np.pad(low, ((0, n0 % 2), (0, m0 % 2)), mode="edge")
            a, b_, c, d = p[0::2, 0::2], p[0::2, 1::2], p[1::2, 0::2], p[1::2, 1::2]
            low = (a + b_ + c + d) // 2
            bands[level] = [((a - b_ + c - d) // 2)[:, :m0 - m1], ((a + b_ - c - d) // 2)[:n0 - n1],
                            ((a - b_ - c + d) // 2)[:n0 - n1, :m0 - m1]]
        result = np.zeros((height, width), dtype=np.float64)
        for level, orientation, rows, cols in subbands.subbands(height, width):
            if orientation == "LL":
                result[rows, cols] = divide(low, LL_STEP)
            else:
                result[rows, cols] = divide(bands[level][subbands.ORIENTATIONS.index(orientation)], STEPS[level - 1])
        out.append(result)
    return np.stack(out)


def truncated(x: np.ndarray, step: int) -> np.ndarray:
    return np.sign(x) * (np.abs(x) // step)


@pytest.fixture(scope="module")
def planes() -> np.ndarray:
    """71 x 93 (odd sides: every band size rounds), three quarters zeros, 89 escapes."""
    q = haar_planes(astronaut()[20:91, 150:243], truncated).astype(np.int32)
    assert (np.abs(q) > wp.DIRECT).sum() == 89 and 0.7 < (q == 0).mean() < 0.8
    return q


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def context_model(weights_id: str, quality: int):
    spec = load_spec(weights_id)
    return spec.family.entropy_model(spec.entropy_tables, quality)


WAVELET_PINS = {
    # (weights, quality, mode, resolution order): (payload bytes, SHA-256)
    ("wavelet-v1", 50, "RGB", True): (4064, "54d45a0c16f43f3404234de4fe1e9e384613d2b0b8d399f07aa0e029edc82acd"),
    ("wavelet-v2", 50, "RGB", True): (3864, "038c6b8ca12d17747c1886bf7bd6f74f43180a4ba1f3d7e49ea98dc549d250a5"),
    ("wavelet-v2", 50, "L", True): (2352, "55a59c87dd9fde2bd86eb08bb6c5c838d1dca76b99a285b4a26049c5fff79e20"),
    ("wavelet-v2", 50, "RGB", False): (3864, "aab0f3ce5a2be1af5c3836f842cb56522ad61836ebd9aa2687238d3fe3584087"),
    ("wavelet-v2", 10, "RGB", True): (5516, "2bd6dd24ab13b46ee2f48d9880590ff2c7d8402ca92b7ccff8932f70199c9b97"),
    ("wavelet-v0", 3, "RGB", True): (4884, "1565d02efdc06a05de5afbb547d933398f1e3a9068eabae6cc59d1405e4f99eb"),
}


@pytest.mark.parametrize("key", list(WAVELET_PINS), ids=lambda key: "-".join(map(str, key)))
def test_wavelet_payloads_keep_their_bytes(planes, key):
    weights_id, quality, mode, resolution_order = key
    model = context_model(weights_id, quality)
    coded = planes.copy()
    if mode == "L":
        coded[1:] = 0
    payload = wp.encode_planes(coded, model, mode, resolution_order=resolution_order)
    assert np.array_equal(wp.decode_planes(payload, model, coded.shape[1:], mode, resolution_order), coded)
    assert (len(payload), digest(payload)) == WAVELET_PINS[key]


CHANNEL_PINS = {
    # (weights, table): (payload bytes, SHA-256)
    ("gained-q8-v1", "quality5"): (3200, "adf80bae3658a5925c07235d95510136e11e643a175887d7a6a3b96b6998c876"),
    ("theis-c24-v1", "bits6"): (452, "ee510d10ce9b86efc35ef435f5a9f05de99afdcdf88298d949756b0ec501385e"),
    ("theis-c24-v1", "bits3"): (300, "67b87ec0fa3294e4d0c6d1fa78b5570b99d270955e893185c797c75a68bdda91"),
}


@pytest.mark.parametrize("key", list(CHANNEL_PINS), ids=lambda key: "-".join(key))
def test_per_channel_payloads_keep_their_bytes(planes, key):
    weights_id, table_name = key
    tables = load_spec(weights_id).entropy_tables[table_name]
    channels, alphabet = tables.shape
    values = np.resize(planes.ravel(), channels * 6 * 5).reshape(channels, 6, 5)
    symbols = np.clip(values + alphabet // 2, 0, alphabet - 1)
    payload = encode_symbols(symbols, tables)
    assert np.array_equal(decode_symbols(payload, tables, (6, 5)), symbols)
    assert (len(payload), digest(payload)) == CHANNEL_PINS[key]


# The search's decisions on the fixed coefficients, against plain rounding: detail values kept, one step
# nearer zero, set to zero. Counts, with a little slack: the costs are float64 logarithms, whose last bit
# may differ between CPUs, and a tie may then break the other way.
RDOQ_PINS = {
    # (weights, quality, mu): (kept, lowered, zeroed, payload bytes)
    ("wavelet-v2", 50, rdoq.MU): (4747, 876, 3827, 4092),
    ("wavelet-v1", 50, 0.2): (2984, 1156, 5310, 2944),
}
SLACK = 3


@pytest.mark.parametrize("key", list(RDOQ_PINS), ids=lambda key: "-".join(map(str, key)))
def test_the_encoder_search_keeps_its_decisions(key):
    weights_id, quality, mu = key
    scaled = haar_planes(astronaut()[20:91, 150:243], np.true_divide)
    model = context_model(weights_id, quality)
    rounded = (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int32)
    chosen = rdoq.refine(scaled, model, 0.1, mu=mu)
    detail = np.ones(scaled.shape[1:], dtype=bool)
    for _, orientation, rows, cols in subbands.subbands(*scaled.shape[1:]):
        if orientation == "LL":
            detail[rows, cols] = False
            assert np.array_equal(chosen[:, rows, cols], rounded[:, rows, cols])   # the LL band is left as rounded
    changed = np.abs(rounded) - np.abs(chosen)
    assert np.all(np.sign(chosen) * np.sign(rounded) >= 0) and changed.min() >= 0
    nonzero = (rounded != 0) & detail
    kept, lowered, zeroed = ((changed == 0) & nonzero).sum(), ((changed == 1) & (chosen != 0)).sum(), \
        ((chosen == 0) & nonzero).sum()
    size = len(wp.encode_planes(chosen, model))
    pinned = RDOQ_PINS[key]
    assert np.abs(np.array([kept, lowered, zeroed, size]) - np.array(pinned)).max() <= SLACK, (kept, lowered, zeroed, size)
    assert size < len(wp.encode_planes(rounded, model))
