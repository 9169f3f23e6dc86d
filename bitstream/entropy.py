"""Range coding of quantized feature maps with fixed per-channel frequency tables.

The tables are integer symbol counts shipped with the weights (one row per
feature channel, ``2**bits`` columns). They are handed to constriction as
float64, which represents every count exactly, and constriction turns them
into its fixed-point model with integer arithmetic, so encoder and decoder
build the very same model on any machine: decoding is bit-exact.

Symbols are coded channel by channel in row-major order; the payload is
constriction's stream of 32-bit words, stored little-endian.
"""
from __future__ import annotations

import constriction
import numpy as np

from .errors import FczError

# The learned families' symbols are 6-bit integers (the header's ``bits`` is 6 for them; the seed's ranges
# family codes 1..8 bits): the encoder's models clamp to this alphabet, and the payload tables have its width.
SYMBOL_BITS = 6

def _channel_model(counts: np.ndarray) -> constriction.stream.model.Categorical:
    # perfect=False: the fast, documented-deterministic construction; encoder and decoder must agree on it.
    return constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False)


def encode_symbols(symbols: np.ndarray, tables: np.ndarray) -> bytes:
    """Symbols ``C x h x w`` (ints in ``[0, tables.shape[1])``) -> payload bytes."""
    channels, alphabet = tables.shape
    if symbols.ndim != 3 or symbols.shape[0] != channels:
        raise ValueError(f"symbols of shape {symbols.shape} do not match tables for {channels} channels")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet):
        raise ValueError(f"symbols outside the alphabet 0..{alphabet - 1}")
    encoder = constriction.stream.queue.RangeEncoder()
    for channel_symbols, counts in zip(symbols, tables):
        encoder.encode(np.ascontiguousarray(channel_symbols, dtype=np.int32).ravel(), _channel_model(counts))
    return encoder.get_compressed().astype("<u4").tobytes()


# Margin below that bound before a payload is refused. Every stream measured was at or above the
# bound; the margin allows for the two words of decoder state that sealing may leave implicit.
_SEAL_SLACK_BITS = 64


def min_payload_bits(tables: np.ndarray, count: int) -> float:
    """A lower bound on the size, in bits, of any payload that codes ``count`` symbols per channel.

    No range coder writes fewer bits than the information content of its message,
    and no symbol carries less than ``-log2`` of its channel's largest probability.
    constriction's fixed-point model may round that probability up a little; 2**-20
    covers its 24-bit precision.
    """
    counts = tables.astype(np.float64)
    largest = np.minimum(1.0, counts.max(axis=1) / counts.sum(axis=1) + 2.0**-20)
    return count * float(-np.log2(largest).sum())


def check_payload_length(payload: bytes, tables: np.ndarray, shape: tuple[int, int]) -> None:
    """Refuse a payload too short to code ``C x h x w`` symbols with ``tables``; ``shape`` is ``(h, w)``."""
    count = shape[0] * shape[1]
    # Past the end of its data constriction's decoder reads zero words and, from an all-zero
    # state, keeps decoding without error. Without this check a file of a few hundred bytes
    # whose header claims a 16384 x 16384 image would be decoded in full, and the network run
    # on it (minutes, tens of GB). No encoder output is this short, so it is refused as corrupt.
    if 8 * len(payload) + _SEAL_SLACK_BITS < min_payload_bits(tables, count):
        raise FczError(f"corrupt file: a payload of {len(payload)} bytes is too short to hold "
                       f"{len(tables)} x {shape[0]} x {shape[1]} symbols")


def decode_symbols(payload: bytes, tables: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Payload bytes -> symbols ``C x h x w`` (int32); ``shape`` is ``(h, w)``."""
    check_payload_length(payload, tables, shape)
    count = shape[0] * shape[1]
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    try:
        channels = [decoder.decode(_channel_model(counts), count) for counts in tables]
    except Exception as exc:  # constriction signals an undecodable stream with its own exception types
        raise FczError(f"corrupt file: entropy-coded payload does not decode ({exc})") from None
    return np.stack(channels).reshape(len(tables), *shape).astype(np.int32)


def symbol_histograms(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    """Per-channel counts of symbols ``N x C x h x w`` -> ``C x alphabet`` int64 (for building tables)."""
    channels = symbols.shape[1]
    flat = np.moveaxis(symbols, 1, 0).reshape(channels, -1)
    return np.stack([np.bincount(row, minlength=alphabet) for row in flat])
