"""A task-conditioned pyramidal DenseNet autoencoder that restores damaged faces (``fcz restore``).

The design is the fully convolutional DenseNet ("The One Hundred Layers Tiramisu",
Jégou et al., CVPR-W 2017) as used for face restoration: a U-shaped
autoencoder whose encoder goes down through dense blocks and transitions down,
whose decoder comes up through dense blocks and transitions up, with a skip
connection at every resolution level::

    damaged RGB in [-1, 1] ┐
    condition planes ──────┴► conv3x3 ─► DB(d0) ─┬─► TD ─► DB(d1) ─┬─► TD ─► … ─► DB(bottleneck)
                                                  │                 │                    │ new features
                                                  │ skip            │ skip               ▼
    restored RGB ◄─ input + 2 tanh(conv1x1) ◄─ DB(u0) ◄─ cat ◄─ TU ◄─ DB(u1) ◄─ cat ◄─ TU

    DB(n): n dense layers, each BN ─► ReLU ─► conv3x3 giving ``growth`` features,
           concatenated to everything before it in the block
    TD:    BN ─► ReLU ─► conv1x1 ─► 2x2 pool      (average or max)
    TU:    3x3 transposed conv, stride 2           (or 2x upsample ─► conv3x3)

As in the Tiramisu, the down path carries a block's input and new features
onward, the up path only a block's new features (so width does not explode),
and the last block hands everything to the head. ``transition`` picks every
down/up transition at once (``TRANSITIONS``); ``"flat"`` keeps full
resolution throughout, which with ``skips=False`` gives the non-pyramidal
shallow and deep baselines the comparison needs from the same depth lists.

One network serves every task: ``conditions`` one-hot planes name the
damage (facecodec.restoration builds them, plus a plane marking black holes for
inpainting), so the CPU budget of one training run is shared. The tanh output
is a residual: ``2 tanh(head)`` spans every correction from -1 to 1 and back and
is added to the damaged input, so an untrained network (zero head) returns its
input, which short CPU trainings start from. (A residual inside the tanh,
``tanh(head + atanh(input))``, was tried first: black holes and dark
backgrounds sit where tanh is flat, and after 500 steps the holes had not
moved.) Outputs may leave [-1, 1] by a little; the loss pulls them back and
facecodec.tensors.to_pixels clips them.
The paper's largest model is ``down=(4, 5, 7, 10, 12), bottleneck=15,
up=(12, 10, 7, 5, 4)`` with growth 16 (103 layers).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class DenseLayer(nn.Sequential):
    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, growth, 3, padding=1, bias=False))


class DenseBlock(nn.Module):
    """``layers`` dense layers; returns their new features only (``growth * layers`` channels)."""

    def __init__(self, in_channels: int, growth: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(in_channels + i * growth, growth) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features[1:], 1)


def _down_pool(pool: type[nn.Module]) -> Callable[[int], nn.Module]:
    return lambda channels: nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                          nn.Conv2d(channels, channels, 1, bias=False), pool(2))


def _down_flat(channels: int) -> nn.Module:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1, bias=False))


def _up_transposed(in_channels: int, out_channels: int) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)


def _up_resize(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 3, padding=1))


def _up_flat(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


# name -> (transition down: channels -> module, transition up: (in, out) -> module, halves the resolution)
TRANSITIONS: dict[str, tuple[Callable[[int], nn.Module], Callable[[int, int], nn.Module], bool]] = {
    "avgpool+transposed": (_down_pool(nn.AvgPool2d), _up_transposed, True),
    "maxpool+transposed": (_down_pool(nn.MaxPool2d), _up_transposed, True),
    "avgpool+resize": (_down_pool(nn.AvgPool2d), _up_resize, True),
    "maxpool+resize": (_down_pool(nn.MaxPool2d), _up_resize, True),
    "flat": (_down_flat, _up_flat, False),
}


class RestoreNet(nn.Module):
    """Damaged RGB in [-1, 1] plus ``conditions`` planes (``N x (3 + conditions) x H x W``) -> restored RGB, about [-1, 1].

    H and W must be multiples of ``stride`` (facecodec.restoration pads to it).
    """

    def __init__(self, conditions: int = 9, first_features: int = 32, growth: int = 16,
                 down: tuple[int, ...] = (3, 4, 5), bottleneck: int = 6, up: tuple[int, ...] = (5, 4, 3),
                 transition: str = "avgpool+transposed", skips: bool = True) -> None:
        super().__init__()
        if len(down) != len(up):
            raise ValueError(f"down {list(down)} and up {list(up)} need as many blocks each")
        if transition not in TRANSITIONS:
            raise ValueError(f"unknown transition {transition!r}; known: {', '.join(TRANSITIONS)}")
        make_down, make_up, halves = TRANSITIONS[transition]
        self.conditions, self.skips = conditions, skips
        self.stride = 2 ** len(down) if halves else 1
        self.first = nn.Conv2d(3 + conditions, first_features, 3, padding=1)
        channels, skip_channels = first_features, []
        self.down_blocks, self.down_transitions = nn.ModuleList(), nn.ModuleList()
        for layers in down:
            self.down_blocks.append(DenseBlock(channels, growth, layers))
            channels += growth * layers
            skip_channels.append(channels)
            self.down_transitions.append(make_down(channels))
        self.bottleneck = DenseBlock(channels, growth, bottleneck)
        new = growth * bottleneck  # what the up path passes on: the last block's new features
        self.up_transitions, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for layers, skip in zip(up, reversed(skip_channels)):
            self.up_transitions.append(make_up(new, new))
            channels = new + (skip if skips else 0)
            self.up_blocks.append(DenseBlock(channels, growth, layers))
            new = growth * layers
        self.head = nn.Conv2d(channels + new, 3, 1)
        nn.init.zeros_(self.head.weight)  # start as the identity on the damaged input (see the docstring)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        damaged = x[:, :3]
        skips = []
        x = self.first(x)
        for block, transition in zip(self.down_blocks, self.down_transitions):
            x = torch.cat([x, block(x)], 1)
            skips.append(x)
            x = transition(x)
        new = self.bottleneck(x)
        for transition, block, skip in zip(self.up_transitions, self.up_blocks, reversed(skips)):
            x = transition(new)
            x = torch.cat([x, skip], 1) if self.skips else x
            new = block(x)
        return damaged + 2 * torch.tanh(self.head(torch.cat([x, new], 1)))
