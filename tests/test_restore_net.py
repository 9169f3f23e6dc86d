"""The restoration network (facecodec.models.restore_net) and its input planes, on random tensors: no weights needed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from facecodec.models import build_model
from facecodec.models.restore_net import TRANSITIONS, RestoreNet
from facecodec.restoration import CONDITIONS, INPUT_PLANES, network_input

TINY = dict(first_features=8, growth=4, down=(1, 2), bottleneck=2, up=(2, 1))


def _layers(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules())


def test_the_papers_largest_model_has_103_layers():
    model = RestoreNet(growth=16, down=(4, 5, 7, 10, 12), bottleneck=15, up=(12, 10, 7, 5, 4))
    assert _layers(model) == 103 and model.stride == 32


@pytest.mark.parametrize("transition", list(TRANSITIONS))
def test_every_transition_keeps_the_size_and_starts_as_the_identity(transition):
    torch.manual_seed(0)
    model = RestoreNet(**TINY, transition=transition, skips=transition != "flat").eval()
    assert model.stride == (1 if transition == "flat" else 4)
    damaged = torch.rand(2, 3, 16, 24) * 0.9 + 0.05
    x = network_input(damaged, torch.tensor([0, 3]))
    out = model(x)
    assert out.shape == (2, 3, 16, 24)
    torch.testing.assert_close(out, damaged * 2 - 1, atol=1e-5, rtol=0)  # zero head: the damaged input back


def test_depth_lists_must_pair_up_and_transitions_be_known():
    with pytest.raises(ValueError, match="as many blocks"):
        RestoreNet(down=(2, 3), up=(3,))
    with pytest.raises(ValueError, match="unknown transition"):
        RestoreNet(transition="stride")
    assert isinstance(build_model("restore", **TINY), RestoreNet)


def test_a_few_steps_learn_a_fixed_denoising_pair():
    torch.manual_seed(0)
    model = RestoreNet(**TINY)
    clean = torch.rand(4, 3, 16, 16) * 0.5 + 0.25
    noisy = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    x = network_input(noisy, torch.zeros(4, dtype=torch.long))
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(30):
        loss = ((model(x) - (clean * 2 - 1)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_input_planes_code_the_condition_and_holes_only_for_inpaint():
    damaged = torch.full((2, 3, 4, 4), 0.5)
    damaged[:, :, 1, 2] = 0  # a black pixel: a hole, if inpainting
    inpaint, denoise = CONDITIONS.index("inpaint"), CONDITIONS.index("denoise")
    x = network_input(damaged, torch.tensor([inpaint, denoise]))
    assert x.shape == (2, 3 + INPUT_PLANES, 4, 4)
    torch.testing.assert_close(x[1, :3], damaged[1] * 2 - 1)  # denoise: black is just black
    filled = damaged[0].clone()
    filled[:, 1, 2] = 0.5  # inpaint: the hole filled smoothly from its grey surroundings
    torch.testing.assert_close(x[0, :3], filled * 2 - 1)
    assert torch.all(x[0, 3 + inpaint] == 1) and torch.all(x[1, 3 + denoise] == 1)
    assert x[:, 3:3 + len(CONDITIONS)].sum() == 2 * 16  # one-hot
    assert x[0, -1].sum() == 1 and x[0, -1, 1, 2] == 1 and x[1, -1].sum() == 0
