"""The wavelet family's context model: what each coded value's table is chosen by, and the tables.

FORMAT.md ("Payload of the wavelet family": Contexts, Sign contexts, Tables) specifies it. Here: the
schemes, the model that turns a group's features into table rows, and the helpers that read decoded
values for a feature; the walk in facecodec.bitstream.wavelet_payload (``traverse``) assembles the features.

A value's context is an integer activity: a weighted sum (integer weights, per class) of capped
magnitudes ``min(|q|, 15)`` of values decoded before it: its parent band (co-located and 3x3), the
sibling orientations of its level coded before it, the co-located luma (and Cb for Cr) values, and
its neighbours decoded in earlier passes of its band. Eleven integer thresholds per class cut the
activity into 12 buckets. Scheme 2 adds a sign context: an integer vote of decoded signs predicts the
value's sign, the value is coded negated where the vote is negative, and the vote's strength (4
contexts) joins the bucket in choosing the table. Each table ("row") is an integer count table
(constriction ``Categorical(counts, perfect=False)``). A class is (luma/chroma, level, orientation,
pass); the tables, weights and thresholds belong to a quality level and are stored in the weights
file, as is the scheme (manifest ``model.context_scheme``).

Everything a context depends on is an integer the decoder has already decoded, so decoding is
bit-exact on any machine.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import constriction
import numpy as np

from .errors import FczError
from .subbands import LEVELS

ALPHABET = 64                        # letters per table row (facecodec.bitstream.wavelet_payload maps values to them)
CAP = 15                             # contexts see min(|q|, CAP)
BUCKETS = 12
MAX_CONTEXT_WEIGHT = 2 ** 16
MAX_SIGN_WEIGHT = 2 ** 8
SIGN_FEATURES = 11                   # scheme 2: 8 neighbours, parent, co-located luma, co-located Cb

Key = tuple[int, int, int, int]      # (colour class, level index, orientation index, pass)
Positions = "np.ndarray | tuple[slice, slice]"   # a pass's positions in its band: a mask or strided slices


@dataclass(frozen=True)
class Scheme:
    """How a payload walks a detail band and what a value's context reads: chosen by the weights.

    Scheme 1 (wavelet-v0, wavelet-v1): two checkerboard passes, the second reading its 4 decoded
    neighbours; a value's sign is part of its letter, so the tables are symmetric. Scheme 2: the
    four phases of the 2x2 grid (even row and column, odd-odd, even-odd, odd-even), so only a
    quarter of a band has no decoded neighbour and the last quarter sees all 8; and a sign
    context: a weighted vote of the decoded neighbours', parent's and co-located planes' signs
    predicts the sign, the value is coded sign-flipped when the vote is negative, and the vote's
    strength picks one of ``sign_contexts`` tables. Measured with ideal code lengths of the detail
    bands at levels 3, 5 and 7, scheme 2 with tables counted on 300 faces/train shrunk by up to 1.6x
    (as wavelet-v2's) against scheme 1 with tables counted on the same faces unshrunk (as wavelet-v0's):
    -2.8, -3.7, -4.2 % on 40 faces/val; -4.2, -5.1, -5.0 % on those faces shrunk to 150 px and
    JPEG-compressed at quality 90; -6.1, -4.7, -0.9 % on two crops of scikit-image's astronaut. With
    unshrunk tables for both, scheme 2 gained more on faces/val (-4.3, -5.6, -8.3 %) but lost on the
    astronaut (-0.5, +2.4, +4.1 %): tables that expect UTKFace's smooth crops misjudge finer detail.
    """

    number: int
    passes: int
    sign_contexts: int
    features: int

    @property
    def table_shape(self) -> tuple[int, ...]:
        """colour class, level index, orientation, pass, bucket, (scheme 2: sign context), letter."""
        signs = (self.sign_contexts,) if self.sign_contexts > 1 else ()
        return (2, LEVELS + 1, 3, self.passes, BUCKETS) + signs + (ALPHABET,)

    @property
    def weights_shape(self) -> tuple[int, ...]:
        return self.table_shape[:4] + (self.features,)

    @property
    def thresholds_shape(self) -> tuple[int, ...]:
        return self.table_shape[:4] + (BUCKETS - 1,)

    @property
    def sign_weights_shape(self) -> tuple[int, ...]:
        return self.table_shape[:4] + (SIGN_FEATURES,)

    @property
    def sign_thresholds_shape(self) -> tuple[int, ...]:
        return self.table_shape[:4] + (self.sign_contexts - 1,)

    def phases(self, shape: tuple[int, int]) -> list["Positions"]:
        """The passes over a band ``shape``, in coding order: boolean masks (scheme 1) or, for the
        2x2 grid, (rows, cols) strided slices, which select without copying (``at``)."""
        if self.passes == 2:
            i, j = np.arange(shape[0])[:, None] % 2, np.arange(shape[1])[None, :] % 2
            return [np.broadcast_to((i + j) % 2 == p, shape) for p in (0, 1)]
        return [(slice(a, None, 2), slice(b, None, 2)) for a, b in ((0, 0), (1, 1), (0, 1), (1, 0))]

    def pass_sizes(self, h: int, w: int) -> list[int]:
        """How many values each pass of an ``h x w`` band holds."""
        if self.passes == 2:
            return [(h * w + 1) // 2, h * w // 2]
        even_h, even_w = (h + 1) // 2, (w + 1) // 2
        return [even_h * even_w, (h - even_h) * (w - even_w), even_h * (w - even_w), (h - even_h) * even_w]


SCHEMES = {1: Scheme(1, passes=2, sign_contexts=1, features=8), 2: Scheme(2, passes=4, sign_contexts=4, features=9)}


def scheme(number: int) -> Scheme:
    try:
        return SCHEMES[number]
    except KeyError:
        raise FczError(f"unknown wavelet context scheme {number}; this facecodec knows {sorted(SCHEMES)}") from None


# --- the model -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContextModel:
    """One quality level's integer entropy model: counts, context weights and bucket thresholds.

    A value's table ("row") is its bucket, and in scheme 2 also its sign context:
    ``row = bucket * sign_contexts + sign context``. ``counts`` keeps the shape stored in the
    weights file (``Scheme.table_shape``); ``rows`` views it as ``key + (row, letter)``.
    """

    counts: np.ndarray       # scheme.table_shape, positive integers
    weights: np.ndarray      # scheme.weights_shape, integers >= 0
    thresholds: np.ndarray   # scheme.thresholds_shape, integers, non-decreasing along the last axis
    scheme: Scheme = SCHEMES[1]
    sign_weights: np.ndarray | None = None      # scheme 2: sign_weights_shape, integers in +-MAX_SIGN_WEIGHT
    sign_thresholds: np.ndarray | None = None   # scheme 2: sign_thresholds_shape, increasing, the first 1

    def __post_init__(self) -> None:
        s = self.scheme
        if (self.counts.shape != s.table_shape or self.weights.shape != s.weights_shape
                or self.thresholds.shape != s.thresholds_shape):
            raise ValueError("wavelet entropy model of the wrong shape")
        if self.weights.min() < 0 or self.weights.max() > MAX_CONTEXT_WEIGHT or self.counts.min() < 1:
            raise ValueError("wavelet context weights must lie in 0..2^16 and counts be positive")
        if s.sign_contexts > 1:
            if (self.sign_weights is None or self.sign_thresholds is None
                    or self.sign_weights.shape != s.sign_weights_shape
                    or self.sign_thresholds.shape != s.sign_thresholds_shape):
                raise ValueError(f"wavelet context scheme {s.number} needs sign weights and thresholds")
            if np.abs(self.sign_weights).max() > MAX_SIGN_WEIGHT:
                raise ValueError("wavelet sign weights must lie in +-2^8")
        object.__setattr__(self, "rows", self.counts.reshape(s.table_shape[:4] + (-1, ALPHABET)))
        object.__setattr__(self, "_models", {})
        object.__setattr__(self, "_min_bits", {})
        object.__setattr__(self, "_strengths", {})

    def model(self, key: Key, row: int) -> constriction.stream.model.Categorical:
        cache = self._models  # type: ignore[attr-defined]
        found = cache.get((key, row))
        if found is None:
            found = cache[(key, row)] = constriction.stream.model.Categorical(
                self.rows[key + (row,)].astype(np.float64), perfect=False)  # type: ignore[attr-defined]
        return found

    def buckets(self, key: Key, features: np.ndarray) -> np.ndarray:
        """Features ``scheme.features x n`` (integers) -> bucket per value, 0..BUCKETS - 1."""
        # int32, exact: < 9 x 2^16 x 2 x 9 x CAP, no overflow. einsum, as below: numpy's integer matmul takes 5x longer.
        activity = np.einsum("k,kn->n", self.weights[key], features)
        return np.searchsorted(self.thresholds[key], activity, side="right")

    def contexts(self, key: Key, features: np.ndarray,
                 sign_features: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """A group's features -> (row per value, and in scheme 2 where the value is coded negated, else None).

        ``sign_features``: ``SIGN_FEATURES x n`` signs (-1, 0, 1) for scheme 2's detail bands; None for
        the LL band, whose values then take sign context 0 and are coded as they are.
        """
        buckets = self.buckets(key, features)
        if self.sign_weights is None or sign_features is None:
            return buckets * self.scheme.sign_contexts, None
        vote = np.einsum("k,kn->n", self.sign_weights[key], sign_features)   # int32, exact: |vote| <= 11 x 2^8
        return buckets * self.scheme.sign_contexts + self.strengths(key).take(np.abs(vote)), vote < 0

    def strengths(self, key: Key) -> np.ndarray:
        """The sign context of every vote strength ``|vote|`` (at most SIGN_FEATURES x MAX_SIGN_WEIGHT) of class
        ``key``: a table (int8: small, and numpy's ``take`` from an int64 one is 8x slower), read in 0.12 ms for
        147,000 values where searching the thresholds took 0.87 ms."""
        cache = self._strengths  # type: ignore[attr-defined]
        if key not in cache:
            cache[key] = np.searchsorted(self.sign_thresholds[key], np.arange(SIGN_FEATURES * MAX_SIGN_WEIGHT + 1),
                                         side="right").astype(np.int8)
        return cache[key]

    @functools.cached_property
    def code_lengths(self) -> np.ndarray:
        """The ideal code length in bits of every letter of every row (``rows``' shape, floats), which the encoder's
        search weighs: kept, as working it out anew (five 1.5 MB temporaries) took 4-5 ms of each encode."""
        counts = self.rows.astype(np.float64)  # type: ignore[attr-defined]
        return np.log2(counts.sum(axis=-1, keepdims=True)) - np.log2(counts)

    def min_bits(self, key: Key) -> float:
        """The fewest bits any one value of class ``key`` can cost (its best row's likeliest letter)."""
        cache = self._min_bits  # type: ignore[attr-defined]
        if key not in cache:
            counts = self.rows[key].astype(np.float64)  # type: ignore[attr-defined]
            largest = np.minimum(1.0, counts.max(axis=1) / counts.sum(axis=1) + 2.0 ** -20)
            cache[key] = float(-np.log2(largest.max()))
        return cache[key]


def oriented(values: np.ndarray, negate: np.ndarray | None) -> np.ndarray:
    """Values as coded: negated where the sign context says so (scheme 2), else as they are."""
    return values if negate is None else np.where(negate, -values, values)


# --- reading decoded values for features ---------------------------------------------------------------

def magnitudes(a: np.ndarray) -> np.ndarray:
    """Capped magnitudes ``min(|a|, CAP)`` (int32), as every activity reads decoded values."""
    return np.minimum(np.abs(a), CAP).astype(np.int32)


def _padded(m: np.ndarray) -> np.ndarray:
    p = np.zeros((m.shape[0] + 2, m.shape[1] + 2), dtype=m.dtype)
    p[1:-1, 1:-1] = m
    return p


def box3(m: np.ndarray) -> np.ndarray:
    """3x3 sums, zero outside."""
    if m.size == 0:
        return m
    p = _padded(m)
    rows = p[:-2] + p[1:-1] + p[2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def at(plane: np.ndarray, where: Positions) -> np.ndarray:
    """The values of ``plane`` (``... x h x w``) at a pass's positions, in raster order, flattened."""
    if isinstance(where, tuple):
        part = plane[(..., *where)]
        return part.reshape(part.shape[:-2] + (-1,))
    return plane[..., where]


def put(plane: np.ndarray, where: Positions, values: np.ndarray) -> None:
    if isinstance(where, tuple):
        target = plane[where]
        target[...] = np.reshape(values, target.shape)
    else:
        plane[where] = values


# (row, column) offsets of a value's neighbours: the 4 direct ones, then the 4 diagonal ones
_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def neighbours_at(padded: np.ndarray, where: Positions) -> list[np.ndarray]:
    """The 8 neighbours (``_NEIGHBOURS`` order) of a pass's positions in a plane given padded by one zero on each side:
    arrays shaped as the pass (strided views for the 2x2 grid, so that sums of them copy once)."""
    h, w = padded.shape[0] - 2, padded.shape[1] - 2
    return [padded[1 + di:1 + di + h, 1 + dj:1 + dj + w][where] for di, dj in _NEIGHBOURS]


def pass_shape(shape: tuple[int, int], where: Positions) -> tuple[int, ...]:
    """The shape of ``at(plane, where)`` for a band of ``shape``: rows x columns of a strided pass, else its count."""
    if isinstance(where, tuple):
        return tuple(len(range(part.start, length, 2)) for part, length in zip(where, shape))
    return (int(np.count_nonzero(where)),)


def colocated_at(m: np.ndarray, factor: int, shape: tuple[int, int], where: Positions) -> np.ndarray:
    """``m`` read at (i // factor, j // factor), clipped to its edge, for a pass's positions (i, j) in a band of
    ``shape``: shaped as the pass (``at``), zeros where ``m`` is empty.

    For the 2x2 grid's strided passes this reads ``m`` where the pass lies, without making the band-sized
    plane first: position (a + 2t, b + 2u) reads m[t, u] at factor 2 and m[a + 2t, b + 2u] at factor 1.
    """
    if m.size == 0:
        return np.zeros(pass_shape(shape, where), dtype=np.int32)
    if isinstance(where, tuple):
        rows, cols = (_clipped(part.start, factor, length, size) for part, length, size in zip(where, shape, m.shape))
        return m[rows][:, cols]
    rows = np.minimum(np.arange(shape[0]) // factor, m.shape[0] - 1)
    cols = np.minimum(np.arange(shape[1]) // factor, m.shape[1] - 1)
    return m[rows][:, cols][where]


@functools.lru_cache(maxsize=4096)
def _clipped(start: int, factor: int, length: int, size: int) -> "slice | np.ndarray":
    """The source indices of a strided pass's positions start, start + 2, ... < length read at 1 / factor in an
    axis of ``size``: a slice where none passes the edge, else the indices clipped to it."""
    count = len(range(start, length, 2))
    first, step = (0, 1) if factor == 2 else (start, 2)
    last = first + step * (count - 1)
    if count == 0 or last < size:
        return slice(first, first + step * count, step)
    index = np.minimum(np.arange(count) * step + first, max(size - 1, 0))
    index.flags.writeable = False   # cached: shared by every call
    return index
