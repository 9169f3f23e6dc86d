"""Tiled inference must match one pass over the whole image: the margins cover the receptive fields."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import facecodec
from facecodec import codec
from facecodec.bitstream import FczHeader, decode_symbols, unpack
from facecodec.image_io import open_image
from facecodec.models.tiling import run_in_tiles
from facecodec.arrays import padded_array, to_image
from facecodec.zoo import load_spec, load_weights, manifest_entry, pixel_codec_ids


# The wavelet transforms (lossy and reversible) run over whole images (their families code large ones as tiles of
# their own: test_wavelet_tiles.py); the networks run in overlapping tiles.
NETWORK_IDS = [i for i in pixel_codec_ids() if manifest_entry(i)["architecture"] not in ("wavelet", "reversible")]


@pytest.fixture(scope="module", params=NETWORK_IDS)
def weights(request):
    return load_weights(request.param, "cpu")


def _numpy(function):
    """A torch network's method as run_in_tiles takes it: numpy in and out."""
    return lambda part: function(torch.from_numpy(np.ascontiguousarray(part))).numpy()


@torch.inference_mode()
def test_tiled_encoder_and_decoder_match_a_single_pass(weights):
    model, stride = weights.model, weights.stride
    x = np.random.default_rng(0).random((1, 3, 208, 144), dtype=np.float32)  # a multiple of every stride
    y = _numpy(model.encode)(x)
    tiled_y = run_in_tiles(_numpy(model.encode), x, 64, model.encode_margin, 1, stride)
    assert tiled_y.shape == y.shape
    np.testing.assert_allclose(tiled_y, y, atol=1e-4)
    x_hat = _numpy(model.decode)(y)
    tiled_x_hat = run_in_tiles(_numpy(model.decode), y, 64 // stride, model.decode_margin, stride, 1)
    assert tiled_x_hat.shape == x_hat.shape
    np.testing.assert_allclose(tiled_x_hat, x_hat, atol=1e-4)


@torch.inference_mode()
def test_too_small_a_margin_would_show(weights):
    """Guards the test above: without margins the tiles do differ, so matching means something."""
    model, stride = weights.model, weights.stride
    x = np.random.default_rng(1).random((1, 3, 128, 128), dtype=np.float32)
    encode, decode = _numpy(model.encode), _numpy(model.decode)
    y = encode(x)
    assert not np.allclose(run_in_tiles(encode, x, 64, 0, 1, stride), y, atol=1e-4)
    assert not np.allclose(run_in_tiles(decode, y, 64 // stride, 0, stride, 1), decode(y), atol=1e-4)


def test_misaligned_tiles_are_refused():
    with pytest.raises(ValueError, match="multiples"):
        run_in_tiles(lambda t: t, np.zeros((1, 1, 100, 100)), 60, 8, 1, 8)


def _symbols(data: bytes) -> tuple[FczHeader, np.ndarray]:
    header, payload = unpack(data)
    return header, decode_symbols(payload, load_spec(header.weights_id).table(header), header.latent_shape[1:])


def _encoded(image, setting: dict, tile: int) -> bytes:
    """``facecodec.encode``'s steps, with ``g_a`` run in network tiles of ``tile`` pixels."""
    settings = codec.encode_settings(**setting)
    weights = load_weights(settings.weights_id)
    rgb, mode = open_image(image)
    x, pad_right, pad_bottom = padded_array(rgb, weights.stride)
    y = codec.analyse(weights, x, tile=tile)
    return codec.features_to_fcz(weights, y, settings, rgb.size, mode, pad_right, pad_bottom)


def _decoded(data: bytes, tile: int) -> np.ndarray:
    """``facecodec.decode``'s steps, with ``g_s`` run in network tiles of ``tile`` pixels."""
    header, weights, [(_, features, _)] = codec.open_fcz(data)
    pixels = codec.synthesise(weights, features(), tile=tile)
    return np.asarray(to_image(pixels, header.width, header.height, header.mode), dtype=np.int16)


@pytest.mark.parametrize("setting", [{"weights_id": "gained-q8-v1"}, {"bits": 6}])
def test_encoding_in_small_tiles_gives_the_same_file(face, setting):
    data = facecodec.encode(face, **setting)
    assert _encoded(face, setting, codec.NETWORK_TILE) == data  # the steps are encode's: one pass at 144 x 160
    whole_header, whole = _symbols(data)
    tiled_header, tiled = _symbols(_encoded(face, setting, 64))  # the 144 x 160 face in 3 x 3 tiles
    # Tiles change the features in the last float bits only (the test above), so every header field but the
    # per-image float ranges is the same, and those agree far inside one quantization step.
    assert replace(tiled_header, channel_ranges=()) == replace(whole_header, channel_ranges=())
    np.testing.assert_allclose(tiled_header.channel_ranges, whole_header.channel_ranges, rtol=0, atol=1e-4)
    # A feature that sits right on a rounding boundary may go to the neighbouring symbol; one in a thousand
    # is far more than float rounding explains, and far fewer than tiles without enough margin change.
    assert np.abs(tiled - whole).max() <= 1
    assert np.count_nonzero(tiled != whole) <= whole.size // 1000


@pytest.mark.parametrize("setting", [{"weights_id": "gained-q8-v1"}, {"bits": 6}])
def test_decoding_in_small_tiles_gives_the_same_pixels(face, setting):
    data = facecodec.encode(face, **setting)
    whole = np.asarray(facecodec.decode(data), dtype=np.int16)
    assert np.array_equal(_decoded(data, codec.NETWORK_TILE), whole)  # the steps are decode's: one pass
    tiled = _decoded(data, 64)  # the decoder's tiles: 64 // stride latent pixels a side
    assert np.abs(tiled - whole).max() <= 1  # float rounding may move a pixel by one level, never more
