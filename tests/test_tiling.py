"""Tiled inference must match one pass over the whole image: the margins cover the receptive fields."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import facecodec
from facecodec import codec
from facecodec.metrics import psnr
from facecodec.tiling import run_in_tiles
from facecodec.zoo import installed_ids, load_weights


@pytest.fixture(scope="module", params=installed_ids())
def weights(request):
    return load_weights(request.param)


@torch.inference_mode()
def test_tiled_encoder_and_decoder_match_a_single_pass(weights):
    model, stride = weights.model, weights.stride
    x = torch.rand(1, 3, 208, 144, generator=torch.Generator().manual_seed(0))  # a multiple of every stride
    y = model.encode(x)
    tiled_y = run_in_tiles(model.encode, x, 64, model.encode_margin, 1, stride)
    assert tiled_y.shape == y.shape
    assert torch.allclose(tiled_y, y, atol=1e-4)
    x_hat = model.decode(y)
    tiled_x_hat = run_in_tiles(model.decode, y, 64 // stride, model.decode_margin, stride, 1)
    assert tiled_x_hat.shape == x_hat.shape
    assert torch.allclose(tiled_x_hat, x_hat, atol=1e-4)


@torch.inference_mode()
def test_too_small_a_margin_would_show(weights):
    """Guards the test above: without margins the tiles do differ, so matching means something."""
    model = weights.model
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(run_in_tiles(model.encode, x, 64, 0, 1, weights.stride), model.encode(x), atol=1e-4)


def test_misaligned_tiles_are_refused():
    with pytest.raises(ValueError, match="multiples"):
        run_in_tiles(lambda t: t, torch.zeros(1, 1, 100, 100), 60, 8, 1, 8)


@pytest.mark.parametrize("setting", [{}, {"bits": 6}])
def test_codec_output_is_the_same_with_small_tiles(face, monkeypatch, setting):
    whole = facecodec.encode(face, **setting)
    monkeypatch.setattr(codec, "TILE", 64)
    tiled = facecodec.encode(face, **setting)
    assert tiled == whole or psnr(np.asarray(facecodec.decode(tiled)), np.asarray(facecodec.decode(whole))) > 45
