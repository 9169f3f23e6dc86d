"""The wavelet transform as a torch ``nn.Module``, for training: the fixed transform (facecodec.models.wavelet_transform)
with its step tables as buffers, and the learned parts (the lifting residuals, the post-filter) as parameters.

The codec does not run this module for the default weights: facecodec.models.wavelet_runtime runs the same
numpy transform and the post-filter by ONNX Runtime, without torch. The trainers (train/train_postfilter.py,
train/train_lifting.py, train/wavelet_tables.py) build and save it; its state dict is what the weights file holds.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facecodec.bitstream.subbands import LEVELS
from facecodec.models.lifting import LearnedLifting
from facecodec.models.postfilter import PostFilter
from facecodec.models.wavelet_transform import NumpyResiduals


class WaveletTransform(nn.Module):
    """The fixed transform's tables as buffers, and its learned parts: what the trainers train and export.

    ``steps[quality - 1, plane, level index, orientation]``: plane 0, 1, 2 = Y, Cb, Cr;
    level index 0..LEVELS - 1 for levels 1..LEVELS, and LEVELS for the LL band (all three equal);
    orientation 0, 1, 2 = HL, LH, HH. ``recon_offset[quality - 1]``: the decoder puts a nonzero
    value ``|q|`` at ``(|q| + recon_offset) * step``; ``rounding_offset[quality - 1]``: the encoder's
    dead zone, ``|q| = floor(|y| / step + rounding_offset)`` (0.5 would be plain rounding).

    With ``postfilter_layers`` > 0 the decoder ends in a quality-conditioned residual CNN
    (facecodec.models.postfilter), trained with everything else frozen (train/train_postfilter.py).
    It is conditioned on each image's quality level (the codec passes it as a fourth feature plane:
    facecodec.models.wavelet_runtime.WaveletRuntime.with_quality).

    ``continuous_quality``: the weights take ``quality`` 1..100 instead of the table's levels; a quality
    stands for level ``quality / 10`` (below 10: from ``lowest_level`` at quality 1), its steps
    interpolated between the levels' tables (``steps_at``; facecodec.families.WaveletFamily has the mapping).
    ``context_scheme``: how the payload's contexts are formed (facecodec.bitstream.contexts.Scheme).

    With ``lifting_levels`` > 0 the lifting steps of the finest that many levels add a learned residual
    (facecodec.models.lifting, trained by train/train_lifting.py): the encoder runs it exactly, the same
    bits on every machine, the decoder by fast convolutions. Its subbands and symbols mean what the
    fixed transform's do, so the payload is unchanged.
    """

    def __init__(self, channels: int = 3, levels: int = LEVELS, qualities: int = 8,
                 postfilter_hidden: int = 0, postfilter_layers: int = 0, continuous_quality: bool = False,
                 lowest_level: float | None = None, context_scheme: int = 1, lifting_levels: int = 0,
                 lifting_hidden: int = 8, postfilter_below_level: float | None = None) -> None:
        super().__init__()
        if channels != 3 or levels != LEVELS:
            raise ValueError(f"the wavelet transform codes 3 planes (YCbCr) of {LEVELS} levels, as its payload does")
        self.levels, self.continuous_quality = levels, continuous_quality
        self.lowest_level, self.context_scheme = lowest_level, context_scheme
        self.postfilter_below_level = postfilter_below_level   # the decoder's filter range (wavelet_runtime); not trained
        self.register_buffer("steps", torch.ones(qualities, 3, levels + 1, 3))
        self.register_buffer("recon_offset", torch.zeros(qualities))
        self.register_buffer("rounding_offset", torch.full((qualities,), 0.5))
        self.postfilter = PostFilter(qualities, postfilter_hidden, postfilter_layers) if postfilter_layers else None
        self.lifting = LearnedLifting(lifting_levels, lifting_hidden) if lifting_levels else None

    @property
    def qualities(self) -> int:
        return self.steps.shape[0]

    def residuals(self, exact: bool) -> NumpyResiduals | None:
        """The learned lifting residuals for the numpy transform (``exact``: the encoder's), or None."""
        return None if self.lifting is None else self.lifting.steps(exact)


def learned_lifting(arrays: dict[str, np.ndarray], levels: int, hidden: int) -> LearnedLifting:
    """The learned lifting residuals of a weights file's ``lifting.*`` arrays, loaded and frozen."""
    from facecodec.models.networks import state_dict

    lifting = LearnedLifting(levels, hidden)
    lifting.load_state_dict(state_dict(arrays, "lifting."))
    return lifting.eval().requires_grad_(False)


class TorchPostFilter:
    """The post-filter by torch on a device (``--device cuda``): the runner facecodec.models.wavelet_runtime takes."""

    def __init__(self, arrays: dict[str, np.ndarray], qualities: int, hidden: int, layers: int, device: str) -> None:
        from facecodec.devices import resolve_device
        from facecodec.models.networks import loaded

        self.device = resolve_device(device)
        self.network = loaded(PostFilter(qualities, hidden, layers), {name[len("postfilter."):]: array
                              for name, array in arrays.items() if name.startswith("postfilter.")}, self.device)
        self.margin = self.network.margin

    def __call__(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.network(torch.from_numpy(np.ascontiguousarray(x)).to(self.device),
                               torch.from_numpy(np.asarray(levels, dtype=np.float32)).to(self.device))
        return out.cpu().numpy()
