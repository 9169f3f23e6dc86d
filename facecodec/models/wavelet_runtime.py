"""The wavelet family's transforms as the codec runs them: numpy, and the post-filter by ONNX Runtime.

This is what makes the default weights run without torch (facecodec.models.transform's interface)::

    analyse:    padded RGB N x 3 x H x W in [0, 1] --x 255, CDF 9/7 (facecodec.models.wavelet_transform)--> planes
    synthesise: features N x 4 x H x W (coefficients + the level plane, ``with_quality``)
                --inverse CDF 9/7--> RGB --8-bit--> [post-filter, in tiles] --8-bit--> pixels

The arrays are the weights file's own (steps, offsets, the learned parts). Two parts may still need torch,
and load it only when a weights file has them or the user asks for them: learned lifting residuals
(wavelet-v3: facecodec.models.lifting), and the post-filter on a CUDA device (``--device cuda``). On the CPU
the post-filter runs from the ONNX graph shipped beside the weights (facecodec.models.postfilter_onnx).
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from facecodec.arrays import to_uint8
from facecodec.bitstream.subbands import LEVELS
from facecodec.devices import require_torch
from facecodec.models.tiling import run_in_tiles
from facecodec.models.transform import NETWORK_TILE
from facecodec.models.wavelet_transform import NumpyResiduals, analysis, synthesis


class PostFilterRunner(Protocol):
    """The post-filter, by ONNX Runtime (facecodec.models.postfilter_onnx) or torch on a GPU."""

    margin: int

    def __call__(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Decoded RGB ``N x 3 x H x W`` in [0, 1], rounded to 8-bit levels, and quality levels ``N`` -> filtered."""


class WaveletRuntime:
    """The fixed transform of one wavelet weights: step tables, offsets, optional learned parts.

    ``steps[level - 1]`` and the offsets per trained level are those of facecodec.models.wavelet_network's
    module (its docstring says what each holds); ``residuals(exact)``: the learned lifting for the numpy
    transform (``exact`` for the encoder, which must give the same bits everywhere), or None.
    """

    stride = 1

    def __init__(self, steps: np.ndarray, recon_offset: np.ndarray, rounding_offset: np.ndarray,
                 residuals: Callable[[bool], NumpyResiduals | None] = lambda exact: None,
                 postfilter: PostFilterRunner | None = None, postfilter_below: float = np.inf) -> None:
        self.steps, self.recon_offset, self.rounding_offset = steps, recon_offset, rounding_offset
        self.residuals, self.postfilter = residuals, postfilter
        # The filter runs below this level only (manifest ``model.postfilter_below_level``): where its measured
        # gain is none, it costs nothing either.
        self.postfilter_below = postfilter_below

    def analyse(self, x: np.ndarray, tile: int = NETWORK_TILE) -> np.ndarray:
        residuals = self.residuals(True)
        return np.stack([analysis(image * np.float32(255), LEVELS, residuals) for image in x])

    @staticmethod
    def with_quality(y: np.ndarray, level: float) -> np.ndarray:
        """Coefficient planes ``N x 3 x H x W`` -> the decoder's features ``N x 4 x H x W`` (plane 3: the level), so
        that files of different qualities still batch as one array."""
        return np.concatenate([y, np.full_like(y[:, :1], level)], axis=1)

    def synthesise(self, features: np.ndarray, reduce: int = 0, tile: int = NETWORK_TILE) -> np.ndarray:
        """``reduce`` > 0: an image 1 / 2^reduce the size from the coarse bands; the post-filter, trained on
        full-size decodes, is not run on it, nor on images at a level of ``postfilter_below`` or more."""
        residuals = self.residuals(False)
        rgb = np.stack([synthesis(planes, LEVELS, reduce, residuals) for planes in features[:, :3]])
        pixels = to_uint8(rgb / np.float32(255))
        levels, postfilter = features[:, 3, 0, 0], self.postfilter
        wanted = levels < self.postfilter_below
        if postfilter is None or reduce or not wanted.any():
            return pixels
        pixels[wanted] = run_in_tiles(
            lambda part: to_uint8(postfilter(part.astype(np.float32) / np.float32(255), levels[wanted])),
            pixels[wanted], tile, postfilter.margin)
        return pixels


def load(model: dict, arrays: dict[str, np.ndarray], graph: bytes | None, device: str) -> WaveletRuntime:
    """The runtime of wavelet weights: their manifest ``model`` options, arrays (no ``entropy.*``), the post-filter's
    ONNX graph where they have one, and the device the post-filter runs on (``auto``/``cpu``: ONNX Runtime)."""
    residuals: Callable[[bool], NumpyResiduals | None] = lambda exact: None
    if model.get("lifting_levels"):
        require_torch("the learned lifting of these weights")
        from facecodec.models.wavelet_network import learned_lifting

        residuals = learned_lifting(arrays, model["lifting_levels"], model.get("lifting_hidden", 8)).steps
    postfilter = None
    if model.get("postfilter_layers"):
        if device in ("auto", "cpu"):
            from facecodec.models.postfilter_onnx import OnnxPostFilter

            if graph is None:
                raise ValueError("these weights have a post-filter but no ONNX graph of it "
                                 "(python -m facecodec.train.postfilter_onnx writes it)")
            postfilter = OnnxPostFilter(graph, arrays["postfilter.embedding"])
        else:
            from facecodec.models.wavelet_network import TorchPostFilter

            postfilter = TorchPostFilter(arrays, model["qualities"], model["postfilter_hidden"],
                                         model["postfilter_layers"], device)
    return WaveletRuntime(arrays["steps"].astype(np.float32), arrays["recon_offset"].astype(np.float32),
                          arrays["rounding_offset"].astype(np.float32), residuals, postfilter,
                          model.get("postfilter_below_level", np.inf))
