"""The learned lifting in the codec (wavelet-v3): the encoder runs it, the decoder undoes it, the payload is as before."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import facecodec
from facecodec.bitstream import unpack
from facecodec.metrics import psnr
from facecodec.models import wavelet_transform as wt
from facecodec.zoo import load_spec, load_weights

WEIGHTS = "wavelet-v3"


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).copy())[None].float() / 255


def fixed_analysis(image: np.ndarray) -> np.ndarray:
    """The fixed wavelet's coefficients of ``image``, from the same floats the codec's encoder gets."""
    return wt.analysis(as_tensor(image)[0].numpy() * np.float32(255))


def test_the_weights_hold_a_trained_lifting_that_the_encoder_runs(odd_face):
    model = load_weights(WEIGHTS).model
    assert model.lifting is not None and model.lifting.learned_levels == 1
    y = model.encode(as_tensor(odd_face))[0].numpy()
    assert np.abs(y - fixed_analysis(odd_face)).max() > 0.5                       # trained: not the fixed wavelet
    np.testing.assert_allclose(model.synthesise(torch.from_numpy(y)[None])[0].numpy(),
                               as_tensor(odd_face)[0].numpy(), atol=1e-4)   # and undone by the decoder


def test_with_its_residuals_zeroed_the_encoder_is_the_fixed_wavelet(odd_face):
    model = load_weights(WEIGHTS).model
    saved = {name: p.clone() for name, p in model.lifting.state_dict().items()}
    try:
        with torch.no_grad():
            for residual in model.lifting.modules():
                if hasattr(residual, "outer"):
                    residual.outer.weight.zero_()
                    residual.outer.bias.zero_()
        y = model.encode(as_tensor(odd_face))[0].numpy()
        assert np.array_equal(y, fixed_analysis(odd_face))
    finally:
        model.lifting.load_state_dict(saved)


@pytest.mark.parametrize("quality", [1, 50, 100])
def test_qualities_and_efforts_round_trip_odd_sizes_and_greyscale(odd_face, quality):
    spec = load_spec(WEIGHTS)
    weights = load_weights(WEIGHTS)
    for effort in (0, 1):
        data = facecodec.encode(odd_face, quality=quality, weights_id=WEIGHTS, effort=effort)
        header, payload = unpack(data)
        symbols, _ = weights.family.quantize(weights.model, weights.model.encode(as_tensor(odd_face)), quality,
                                             effort, weights.entropy_tables)
        assert np.array_equal(spec.family.entropy_decode(payload, spec.table(header), header), symbols[0])
        assert facecodec.decode(data).size == (97, 101)
        grey = facecodec.encode(odd_face[..., 1].copy(), quality=quality, weights_id=WEIGHTS, effort=effort)
        assert facecodec.decode(grey).mode == "L"


def test_sizes_and_psnr_rise_with_quality_to_48_db(face):
    sizes, scores = [], []
    for quality in (1, 10, 30, 50, 70, 90, 100):
        data = facecodec.encode(face, quality=quality, weights_id=WEIGHTS)
        sizes.append(len(data))
        scores.append(psnr(face, facecodec.decode(data)))
    assert sizes == sorted(sizes) and scores == sorted(scores), (sizes, scores)
    assert scores[-1] >= 48


@pytest.mark.parametrize("reduce", [1, 2, 3])
def test_reduced_decodes_are_low_pass_views_of_the_image(odd_face, reduce):
    data = facecodec.encode(odd_face, quality=70, weights_id=WEIGHTS)
    small = np.asarray(facecodec.decode(data, reduce=reduce)).astype(np.float64)
    assert small.shape[:2] == (-(-101 // 2 ** reduce), -(-97 // 2 ** reduce))
    # The fixed transform's thumbnail of the same image. The learned update steps shift the low band
    # (measured: 4 levels darker at every scale, the rest within 2.4 levels); the full decode has no shift.
    fixed = np.asarray(facecodec.decode(facecodec.encode(odd_face, quality=70, weights_id="wavelet-v2"),
                                        reduce=reduce)).astype(np.float64)
    difference = small - fixed
    assert np.abs(difference).mean() < 6 and np.abs(difference - difference.mean(axis=(0, 1))).mean() < 3
