"""The training-side pieces of the gained model: its prior, its rate-distortion pass, its exported tables."""
from __future__ import annotations

import numpy as np
import torch

from facecodec.models.gained import SYMBOL_MAX, SYMBOL_MIN, GainedFactorized
from facecodec.train.export import entropy_tables, model_family
from facecodec.train.train_rd import rd_forward


def small_model() -> GainedFactorized:
    torch.manual_seed(0)
    return GainedFactorized(channels=8, hidden=8, levels=3)


def test_prior_is_a_distribution_over_the_integers():
    model = small_model()
    grid = torch.arange(-200, 201, dtype=torch.float32).view(1, 1, -1, 1).expand(1, 8, -1, 1)
    for level in range(3):
        mass = model.prior.likelihood(grid, level).sum(dim=2)
        assert torch.allclose(mass, torch.ones_like(mass), atol=1e-3)


def test_rate_distortion_pass_handles_mixed_levels_and_odd_sizes():
    model = small_model()
    x = torch.rand(4, 3, 40, 56)  # not multiples of the stride: padded inside, cropped back
    levels = torch.tensor([0, 2, 1, 2])
    model.train()
    x_hat, bpp = rd_forward(model, x, levels, stage=1)
    assert x_hat.shape == x.shape and bpp.shape == (4,) and (bpp > 0).all()
    (bpp.sum() + x_hat.sum()).backward()
    assert model.log_gain.grad is not None and model.prior.biases[0].grad is not None
    model.eval()
    with torch.no_grad():
        _, rounded_bpp = rd_forward(model, x, levels, stage=2)
    assert rounded_bpp.shape == (4,)


def test_stage_2_leaves_the_encoder_without_gradients():
    model = small_model()
    model.train()
    x_hat, _ = rd_forward(model, torch.rand(2, 3, 32, 32), torch.tensor([0, 1]), stage=2)
    x_hat.sum().backward()
    assert all(p.grad is None for p in model.g_a.parameters())
    assert model.log_gain.grad is None
    assert model.log_inverse_gain.grad is not None and next(model.g_s.parameters()).grad is not None


def test_exported_tables_count_every_symbol_once_plus_one():
    model = small_model().eval()
    images = np.random.default_rng(0).integers(0, 256, size=(3, 40, 40, 3), dtype=np.uint8)
    tables = entropy_tables(model, model_family(model), images)
    assert sorted(tables) == ["entropy.quality1", "entropy.quality2", "entropy.quality3"]
    alphabet = SYMBOL_MAX - SYMBOL_MIN + 1
    positions = 3 * 3 * 3  # 3 images, each padded to 48 x 48 -> 3 x 3 latent positions
    for table in tables.values():
        assert table.shape == (8, alphabet) and table.dtype == torch.int32
        assert (table >= 1).all() and (table.sum(dim=1) == positions + alphabet).all()
