"""Architectures by name, imported when built: importing facecodec.models imports no torch, so the wavelet
family's numpy runtime (facecodec.models.wavelet_runtime) runs where torch is not installed.

The mapping from a ``.fcz`` file's weights id to a file in ``weights/`` lives
in :mod:`facecodec.zoo`; this package only knows how to build and run the transforms.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

ARCHITECTURES: dict[str, str] = {   # name -> "module:class"
    "theis": "facecodec.models.theis:TheisAutoencoder",
    "gained": "facecodec.models.gained:GainedFactorized",
    "wavelet": "facecodec.models.wavelet_network:WaveletTransform",
    "restore": "facecodec.models.restore_net:RestoreNet",  # not a codec: fcz restore (facecodec.restoration)
}


def architecture(name: str) -> type[nn.Module]:
    """The network class of an architecture name; ValueError naming the known ones."""
    try:
        module, cls = ARCHITECTURES[name].split(":")
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None
    return getattr(import_module(module), cls)


def build_model(name: str, **kwargs) -> nn.Module:
    return architecture(name)(**kwargs)
