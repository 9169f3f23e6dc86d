"""One convolution kernel family on the CPU, so a network's output for an image does not depend on batch or threads.

PyTorch picks a CPU convolution backend per call by a speed heuristic
(``use_mkldnn`` in ATen's Convolution.cpp): oneDNN for most layers, but its own
im2col + GEMM ("Slow2d") for 1x1 kernels on one thread with fewer than 16
images, and for small 3x3 layers when the batch holds one image. The two sum in
different orders, so the same image gave features differing in the last float
bits (up to 2e-6) between 1 and 2 threads, or between a batch of 1 and of 32,
and a feature sitting on a rounding edge would then become another symbol.

Inside :func:`consistent_convolutions`, on float32 CPU tensors:

* every 2-D convolution that the heuristic would send elsewhere runs through
  oneDNN (``aten::mkldnn_convolution``, the very call ATen makes when it picks
  oneDNN itself). Layers the heuristic already gives to oneDNN are left alone,
  so files encoded before stay byte-identical wherever they were computed with
  oneDNN (the default at 2+ threads on face-sized images). oneDNN's forward
  convolution gave the same bits for an image at batch sizes 1, 2, 3, 8, 32
  and 1, 2, 3 threads, for both shipped models (measured on an AVX-512 CPU;
  oneDNN does not promise it, so tests/test_batch.py checks it);
* transposed convolutions (the default decoder) run image by image, each as a
  batch of one. oneDNN's deconvolution is *not* batch-invariant: with 2 threads
  a batch of 3 and with 3 threads any batch gave other bits than one image on
  one thread. Image by image, a batch gives exactly what decoding each file
  alone gives at the same thread count; between thread counts, decoded pixels
  may still differ by float rounding, as the README says.

CUDA tensors, other dtypes and anything needing gradients pass through
untouched (training is not affected).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_CONV = {F.conv2d, torch.conv2d}
_TRANSPOSED = {F.conv_transpose2d, torch.conv_transpose2d}
_ONEDNN = {"Mkldnn", "MkldnnTranspose"}
_BACKEND_NAMES = {int(v): name for name, v in torch._C._ConvBackend.__members__.items()}
_BACKEND_NAMES.setdefault(9, "MkldnnTranspose")  # pybind11 leaves this one unnamed in torch 2.x


def _pair(value) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


def _backend(x, w, b, stride, padding, dilation, transposed, output_padding, groups) -> str:
    chosen = torch._C._select_conv_backend(x, w, b, _pair(stride), _pair(padding), _pair(dilation), transposed,
                                           _pair(output_padding), groups, None)
    return _BACKEND_NAMES.get(int(chosen), str(chosen))


def _eligible(x, w, b) -> bool:
    tensors = [t for t in (x, w, b) if t is not None]
    return (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and all(t.device.type == "cpu" and t.dtype == torch.float32 and not t.requires_grad for t in tensors)
            and x.dim() == 4 and not x.is_mkldnn)


def _channels_last(t) -> bool:
    """ATen's ``suggest_memory_format() == ChannelsLast`` for a 4-D tensor."""
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str) or not _eligible(x, weight, bias) or \
            _backend(x, weight, bias, stride, padding, dilation, False, 0, groups) in _ONEDNN:
        return None
    # What ATen's convolution runs when it picks oneDNN itself: contiguous input, same arguments.
    memory_format = torch.channels_last if _channels_last(x) or _channels_last(weight) else torch.contiguous_format
    return torch.ops.aten.mkldnn_convolution(x.contiguous(memory_format=memory_format), weight, bias,
                                             _pair(padding), _pair(stride), _pair(dilation), groups)


def _conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    if not _eligible(x, weight, bias):
        return None
    if len(x) > 1:  # image by image: oneDNN's deconvolution is not batch-invariant (see the module's docstring)
        return torch.cat([_one_transposed(x[i:i + 1], weight, bias, stride, padding, output_padding, groups, dilation)
                          for i in range(len(x))])
    return _one_transposed(x, weight, bias, stride, padding, output_padding, groups, dilation)


def _one_transposed(x, weight, bias, stride, padding, output_padding, groups, dilation):
    if _backend(x, weight, bias, stride, padding, dilation, True, output_padding, groups) in _ONEDNN:
        return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)
    return torch.ops.mkldnn._convolution_transpose_pointwise(
        x.contiguous(), weight, bias, _pair(padding), _pair(output_padding), _pair(stride), _pair(dilation), groups,
        "none", [], None)


class _OneDnnConvolutions(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONV or func in _TRANSPOSED:
            with torch._C.DisableTorchFunction():
                out = (_conv2d if func in _CONV else _conv_transpose2d)(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


@contextlib.contextmanager
def consistent_convolutions() -> Iterator[None]:
    """Run float32 CPU 2-D convolutions in this block on oneDNN, whatever the batch size and thread count."""
    with _OneDnnConvolutions():
        yield
