"""The damages of facecodec.damage: each one reproducible from its seed, and doing what its name says."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facecodec.bitstream import FczError
from facecodec.damage import (DAMAGE, HOLE_VALUE, condition_of, damage_for_training, damaged_same_size, downscale,
                              gaussian_blur, gaussian_noise, greyscale, jpeg, missing_blocks, pixelate)
from facecodec.metrics import psnr


@pytest.mark.parametrize("condition", list(DAMAGE))
def test_every_damage_is_the_same_for_the_same_seed(face, condition):
    first, again = DAMAGE[condition](face, 3), DAMAGE[condition](face, 3)
    assert first.dtype == np.uint8 and np.array_equal(first, again)


@pytest.mark.parametrize("condition", ["denoise", "inpaint"])
def test_random_damages_change_with_the_seed(face, condition):
    assert not np.array_equal(DAMAGE[condition](face, 1), DAMAGE[condition](face, 2))


def test_noise_has_the_asked_standard_deviation():
    grey = np.full((200, 200, 3), 128, np.uint8)  # mid-grey: nothing clips
    difference = gaussian_noise(grey, sigma=25 / 255, seed=0).astype(np.float64) - 128
    assert abs(difference.mean()) < 0.3
    assert difference.std() == pytest.approx(25, rel=0.02)


def test_missing_blocks_blacken_only_the_holes(face):
    holed, mask = missing_blocks(face, count=4, seed=5)
    assert mask.any() and not mask.all()
    assert np.all(holed[mask] == HOLE_VALUE)
    assert np.array_equal(holed[~mask], face[~mask])
    side = min(face.shape[:2])
    assert mask.sum() <= 4 * round(0.2 * side) ** 2  # at most four squares of the largest side


def test_pixelate_gives_every_cell_its_mean_colour_partial_cells_too():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 13, 3), dtype=np.uint8)
    cells = pixelate(image, cell=8)
    assert cells.shape == image.shape
    for top, left in ((0, 0), (0, 8), (8, 0), (16, 8)):  # whole cells, and the 4 x 5 corner cell
        block = image[top:top + 8, left:left + 8].reshape(-1, 3).astype(np.float64)
        out = cells[top:top + 8, left:left + 8].reshape(-1, 3)
        assert np.all(out == out[0])
        np.testing.assert_allclose(out[0], block.mean(0), atol=0.5)


def test_downscale_averages_cells_and_drops_the_remainder():
    image = np.zeros((150, 150, 3), np.uint8)
    image[:4, :4] = 200  # one 4x4 cell
    small = downscale(image, 4)
    assert small.shape == (37, 37, 3)
    assert np.all(small[0, 0] == 200) and np.all(small[1:, :] == 0) and np.all(small[:, 1:] == 0)
    with pytest.raises(ValueError, match="too small"):
        downscale(image[:7, :7], 8)


def test_blur_leaves_flat_areas_and_smooths_edges():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255
    blurred = gaussian_blur(image, sigma=2)
    assert np.all(blurred[:, :5] == 0) and np.all(blurred[:, -5:] == 255)
    assert 0 < blurred[0, 19, 0] < 128 < blurred[0, 20, 0] < 255


def test_jpeg_loses_more_at_lower_quality(face):
    assert jpeg(face, 15).shape == face.shape
    assert psnr(face, jpeg(face, 15)) < psnr(face, jpeg(face, 60)) - 2


def test_greyscale_is_pillow_luma_in_three_channels(face):
    grey = greyscale(Image.fromarray(face))
    assert np.array_equal(grey[..., 0], np.asarray(Image.fromarray(face).convert("L")))
    assert np.array_equal(grey[..., 0], grey[..., 2])


def test_network_inputs_keep_the_size_superres_upscaled(face):
    for condition in DAMAGE:
        assert damaged_same_size(face, condition, seed=0).shape == face.shape
        rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
        crop = face[:64, :64]
        trained = damage_for_training(crop, condition, rng_a)
        assert trained.shape == crop.shape and np.array_equal(trained, damage_for_training(crop, condition, rng_b))


def test_tasks_and_scales_name_conditions():
    assert condition_of("superres", 8) == "superres8" and condition_of("denoise") == "denoise"
    for task, scale, message in (("superres", None, "needs a scale"), ("superres", 3, "needs a scale"),
                                 ("deblur", 4, "for superres only"), ("sharpen", None, "unknown task")):
        with pytest.raises(FczError, match=message):
            condition_of(task, scale)
