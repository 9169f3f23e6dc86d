"""What the codec runs for a weights' transforms: ``analyse`` (g_a) and ``synthesise`` (g_s) on numpy arrays.

Two kinds plug in here, chosen by the weights' family when they load (facecodec.families.Family.load):
facecodec.models.wavelet_runtime (numpy, its post-filter by ONNX Runtime: no torch) and
facecodec.models.networks (a torch network on a device). The codec sees only this interface.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

NETWORK_TILE = 512  # pixels a side per network pass: bounds memory for large images


class Transform(Protocol):
    """A weights' analysis and synthesis transforms."""

    stride: int  # image sides are padded to a multiple of this

    def analyse(self, x: np.ndarray, tile: int = NETWORK_TILE) -> np.ndarray:
        """Padded images ``N x 3 x H x W`` (float32 in [0, 1]) -> float32 features, in network tiles of ``tile``
        pixels where the transform has a network."""

    def synthesise(self, features: np.ndarray, reduce: int = 0, tile: int = NETWORK_TILE) -> np.ndarray:
        """Dequantized features -> padded images as uint8 pixels ``N x 3 x H x W``, each network tile rounded to
        8 bits as it leaves the network (the whole picture is only ever held as bytes). ``reduce`` > 0 (families
        with ``max_reduce``): images 1 / 2^reduce the size."""
