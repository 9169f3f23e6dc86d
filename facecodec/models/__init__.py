"""Architectures by name.

The mapping from a ``.fcz`` file's weights id to a file in ``weights/`` lives
in :mod:`facecodec.zoo`; this module only knows how to build the networks.
"""
from __future__ import annotations

from torch import nn

from facecodec.models.gained import GainedFactorized
from facecodec.models.restore_net import RestoreNet
from facecodec.models.theis import TheisAutoencoder
from facecodec.models.wavelet_transform import WaveletTransform

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "theis": TheisAutoencoder,
    "gained": GainedFactorized,
    "wavelet": WaveletTransform,
    "restore": RestoreNet,  # not a codec: fcz restore (facecodec.restoration)
}


def build_model(architecture: str, **kwargs) -> nn.Module:
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}") from None
    return cls(**kwargs)
