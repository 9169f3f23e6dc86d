"""A torch network as the codec's transform (facecodec.models.transform): numpy in and out, torch inside.

The older families (theis, gained) are networks with ``encode`` / ``decode`` and a stride; this runs them in
overlapping tiles (facecodec.models.tiling) on a device, on one convolution kernel family whatever the batch
size and thread count (facecodec.numerics), so a file's bytes do not depend on how it was batched.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facecodec.models.threads import threads
from facecodec.models.tiling import run_in_tiles
from facecodec.models.transform import NETWORK_TILE
from facecodec.numerics import consistent_convolutions
from facecodec.tensors import to_pixels


def state_dict(arrays: dict[str, np.ndarray], prefix: str = "") -> dict[str, torch.Tensor]:
    """A network's fp16 arrays as float32 tensors (exact; the copies are also writable, as torch wants).

    ``prefix`` (e.g. ``"postfilter."``): only the arrays of that sub-module, named as it names them.
    """
    return {name[len(prefix):]: torch.from_numpy(array.astype(np.float32 if array.dtype.kind == "f" else array.dtype))
            for name, array in arrays.items() if name.startswith(prefix)}


def loaded(network: nn.Module, arrays: dict[str, np.ndarray], device: str) -> nn.Module:
    """``network`` with the weights' ``arrays`` loaded, in eval mode, float32, frozen, on ``device``; torch told
    the thread count (facecodec.models.threads) now that it is imported."""
    if threads() is not None:
        torch.set_num_threads(threads())
    network.load_state_dict(state_dict(arrays))
    return network.eval().requires_grad_(False).to(device)


class TorchTransform:
    """A network's ``encode`` / ``decode`` (with ``stride``, ``encode_margin``, ``decode_margin``) on ``device``."""

    def __init__(self, network: nn.Module, device: str) -> None:
        self.network, self.device, self.stride = network, torch.device(device), network.stride

    def _run(self, function, x: np.ndarray) -> torch.Tensor:
        with torch.inference_mode(), consistent_convolutions():
            return function(torch.from_numpy(np.ascontiguousarray(x)).to(self.device))

    def analyse(self, x: np.ndarray, tile: int = NETWORK_TILE) -> np.ndarray:
        return run_in_tiles(lambda part: self._run(self.network.encode, part).float().cpu().numpy(), x, tile,
                            self.network.encode_margin, 1, self.stride)

    def synthesise(self, features: np.ndarray, reduce: int = 0, tile: int = NETWORK_TILE) -> np.ndarray:
        if reduce:
            raise ValueError("a network decodes at full size only (its family's max_reduce is 0)")
        return run_in_tiles(lambda part: to_pixels(self._run(self.network.decode, part)).cpu().numpy(), features,
                            tile // self.stride, self.network.decode_margin, self.stride, 1)
