"""Context-adaptive range coding of quantized wavelet subbands (the "wavelet" family's payload).

FORMAT.md ("Payload of the wavelet family") specifies what is written; this module is the
reference. Pure numpy and constriction: no torch, so ``fcz info`` can check a payload.

The symbols are the signed integer quantization indices ``q`` of ``3 x H x W`` coefficient
planes in Mallat layout (Y, Cb, Cr; 4 levels; ``subbands`` below). Every value coded is mapped
to a 64-letter alphabet: ``v + 31`` for ``|v| <= 31`` and ``ESCAPE`` (63) otherwise, whose
sign and remainder follow at once as uniformly coded Exp-Golomb parts, so no value is clipped.

Order (each step a "group" of values; format 3, resolution by resolution)::

    LL band, for each plane coded (Y, Cb, Cr; only Y for a greyscale image): row by row, residual
        r = q - q(row above) - (r of the row so far, summed): q[i] = q[i - 1] + cumsum(r[i])
        (the planar prediction W + N - NW)
    for level 4, 3, 2, 1: for HL, LH, HH: for each plane coded:
        the band's passes: scheme 1, (i + j) even then odd; scheme 2, the four phases of the
        2x2 grid (``Scheme``)

so a decoder can stop after any level and synthesise a smaller image from the coarse bands
(``decode_planes(reduce=...)``). Format 2 had the same groups plane after plane (all of Y,
then Cb, then Cr); every context reads only bands both orders code earlier, so the two
orders code the same values in the same buckets (``coding_order``).

Inside a group, each value's context is an integer activity: a weighted sum (integer
weights, per class) of capped magnitudes ``min(|q|, 15)`` of values decoded before it:
its parent band (co-located and 3x3), the sibling orientations of its level coded before it,
the co-located luma (and Cb for Cr) values, and its neighbours decoded in earlier passes of
its band. Eleven integer thresholds per class cut the activity into 12 buckets. Scheme 2
adds a sign context: an integer vote of decoded signs predicts the value's sign, the value
is coded negated where the vote is negative, and the vote's strength (4 contexts) joins the
bucket in choosing the table. Each table ("row") is an integer count table (constriction
``Categorical(counts, perfect=False)``). A class is (luma/chroma, level, orientation, pass);
the tables, weights and thresholds belong to a quality level and are stored in the weights
file, as is the scheme (manifest ``model.context_scheme``). Values are coded row by row (in
raster order within a row), then the group's escapes in raster order.

Everything a context depends on is an integer the decoder has already decoded, so decoding
is bit-exact on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import constriction
import numpy as np

from .errors import FczError

LEVELS = 4
ORIENTATIONS = ("HL", "LH", "HH")   # HL: high-pass along W; LH: along H; HH: both
ALPHABET = 64
ESCAPE = ALPHABET - 1                # the last letter: |v| > DIRECT
DIRECT = 31                          # values -31..31 are letters 0..62
MAX_EXP_CLASS = 22                   # an escape's Exp-Golomb class k: remainder + 1 in [2^k, 2^(k+1))
MAX_VALUE = DIRECT + 2 ** (MAX_EXP_CLASS + 1) - 1   # the largest |v| a letter and its escape can carry
MAX_SYMBOL = 2 ** 21                 # the largest |q| of a plane: LL residuals then stay within 4 x that < MAX_VALUE
CAP = 15                             # contexts see min(|q|, CAP)
BUCKETS = 12
MAX_CONTEXT_WEIGHT = 2 ** 16
MAX_SIGN_WEIGHT = 2 ** 8
LL_INDEX = LEVELS                    # level index of the LL band in the tables (details: level - 1)
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


# --- geometry ------------------------------------------------------------------------------------------

def level_sizes(n: int, levels: int = LEVELS) -> list[int]:
    """Size of the low band along one axis after 0, 1, .., ``levels`` levels: [n, ceil(n/2), ...]."""
    sizes = [n]
    for _ in range(levels):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def subbands(height: int, width: int, levels: int = LEVELS) -> list[tuple[int, str, slice, slice]]:
    """Every subband as (level, orientation, rows, cols) of a Mallat plane, in coding order.

    First (levels, "LL", ...); then for each level from ``levels`` down to 1 its HL, LH and
    HH bands. Some are empty for tiny images (a side of 1 has no high band).
    """
    hs, ws = level_sizes(height, levels), level_sizes(width, levels)
    bands = [(levels, "LL", slice(0, hs[levels]), slice(0, ws[levels]))]
    for level in range(levels, 0, -1):
        h0, h1, w0, w1 = hs[level], hs[level - 1], ws[level], ws[level - 1]
        bands += [(level, "HL", slice(0, h0), slice(w0, w1)),
                  (level, "LH", slice(h0, h1), slice(0, w0)),
                  (level, "HH", slice(h0, h1), slice(w0, w1))]
    return bands


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

    def model(self, key: Key, row: int) -> constriction.stream.model.Categorical:
        cache = self._models  # type: ignore[attr-defined]
        found = cache.get((key, row))
        if found is None:
            found = cache[(key, row)] = constriction.stream.model.Categorical(
                self.rows[key + (row,)].astype(np.float64), perfect=False)  # type: ignore[attr-defined]
        return found

    def buckets(self, key: Key, features: np.ndarray) -> np.ndarray:
        """Features ``scheme.features x n`` (integers) -> bucket per value, 0..BUCKETS - 1."""
        activity = self.weights[key] @ features   # int32, exact: < 9 x 2^16 x 2 x 9 x CAP, no overflow
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
        vote = self.sign_weights[key] @ sign_features   # int32, exact: |vote| <= 11 x 2^8
        strength = np.searchsorted(self.sign_thresholds[key], np.abs(vote), side="right")
        return buckets * self.scheme.sign_contexts + strength, vote < 0

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


# --- traversal -----------------------------------------------------------------------------------------

def _mag(a: np.ndarray) -> np.ndarray:
    return np.minimum(np.abs(a), CAP).astype(np.int32)


def _padded(m: np.ndarray) -> np.ndarray:
    p = np.zeros((m.shape[0] + 2, m.shape[1] + 2), dtype=m.dtype)
    p[1:-1, 1:-1] = m
    return p


def _box3(m: np.ndarray) -> np.ndarray:
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


def _put(plane: np.ndarray, where: Positions, values: np.ndarray) -> None:
    if isinstance(where, tuple):
        target = plane[where]
        target[...] = np.reshape(values, target.shape)
    else:
        plane[where] = values


# (row, column) offsets of a value's neighbours: the 4 direct ones, then the 4 diagonal ones
_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def _neighbours_at(plane: np.ndarray, where: Positions) -> list[np.ndarray]:
    """The 8 neighbours' values of ``plane`` (``_NEIGHBOURS`` order, zero outside) at a pass's positions."""
    h, w = plane.shape
    p = _padded(plane)
    return [at(p[1 + di:1 + di + h, 1 + dj:1 + dj + w], where) for di, dj in _NEIGHBOURS]


def _colocated(m: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """``m`` read at (i // factor, j // factor) for every (i, j) of ``shape``, clipped to its edge; 0 if empty."""
    if m.size == 0:
        return np.zeros(shape, dtype=np.int32)
    if factor == 1 and m.shape == shape:
        return m
    rows = np.minimum(np.arange(shape[0]) // factor, m.shape[0] - 1)
    cols = np.minimum(np.arange(shape[1]) // factor, m.shape[1] - 1)
    return m[rows][:, cols]


# A group handler gets (class key, features ``scheme.features x n``, sign features ``SIGN_FEATURES x n``
# or None (scheme 1, and the LL band), the values when encoding or None, where the values sit: (plane,
# band rows, band cols, mask within the band), so ``planes[c][rows, cols][mask]`` are the group's
# positions in order, or None for the LL band's residual rows) and returns the group's values: the
# decoded ones when decoding, possibly changed ones when an encoder refines its choice (facecodec.rdoq);
# they are written back before the next group's contexts are formed.
Location = "tuple[int, slice, slice, np.ndarray] | None"
Handler = Callable[[Key, np.ndarray, "np.ndarray | None", "np.ndarray | None", Location], np.ndarray]


def coding_order(height: int, width: int, channels: int, resolution_order: bool = True,
                 reduce: int = 0) -> list[tuple[int, int, str, slice, slice]]:
    """Every coded band as (plane, level, orientation, rows, cols), in the payload's order.

    ``resolution_order`` (format 3): band after band from the LL band down to level 1, each band
    in Y, Cb, Cr; a decoder can then stop after the coarse levels (``reduce``: the number of finest
    levels left out, 0..LEVELS, so a 1 / 2^reduce image can be synthesised). Otherwise (format 2)
    plane after plane, each plane's bands in the same order.
    """
    if reduce and not resolution_order:
        raise ValueError("only a resolution-ordered payload (format 3) can stop before the finest levels")
    if not 0 <= reduce <= LEVELS:
        raise ValueError(f"reduce must be 0..{LEVELS}, not {reduce}")
    bands = [b for b in subbands(height, width) if b[1] == "LL" or b[0] > reduce]
    if resolution_order:
        return [(c, *band) for band in bands for c in range(channels)]
    return [(c, *band) for c in range(channels) for band in bands]


def traverse(planes: np.ndarray, channels: int, handler: Handler, known: bool, resolution_order: bool = True,
             reduce: int = 0, scheme: Scheme = SCHEMES[1]) -> None:
    """Walk the groups in coding order (``coding_order``), filling ``planes`` (``3 x H x W`` int32) as values arrive.

    ``known``: the planes already hold the values (encoding, counting, refining); the handler then
    gets each group's values. Otherwise (decoding) the planes start as zeros and the handler returns them;
    with ``reduce`` the finest levels are not visited and stay zero. Every context reads only bands
    that both orders visit earlier, so the two orders code the same values with the same buckets.
    A detail band is coded in ``scheme.passes`` passes; its own neighbours enter a context only once
    decoded (``done``).
    """
    _, height, width = planes.shape
    mags: dict[tuple[int, int, str], np.ndarray] = {}      # (channel, level, orientation) -> capped magnitudes
    signs: dict[tuple[int, int, str], np.ndarray] = {}     # the same bands' signs (only kept with_signs)
    with_signs = scheme.sign_contexts > 1
    ll_residuals: list[np.ndarray] = []

    def remember(key: tuple[int, int, str], band: np.ndarray) -> None:
        """Keep a finished band as later contexts read it."""
        mags[key] = _mag(band)
        if with_signs:
            signs[key] = np.sign(band).astype(np.int32)

    for c, level, orientation, rows, cols in coding_order(height, width, channels, resolution_order, reduce):
        colour = min(c, 1)
        band = planes[c][rows, cols]
        shape = band.shape
        if band.size == 0:
            remember((c, level, orientation), band)
            if orientation == "LL":
                ll_residuals.append(np.zeros(shape, dtype=np.int64))
            continue
        if orientation == "LL":
            ll_residuals.append(_ll_band(band, c, colour, ll_residuals, handler, known, scheme))
            remember((c, level, orientation), band)
            continue
        o = ORIENTATIONS.index(orientation)
        features = np.zeros((scheme.features,) + shape, dtype=np.int32)
        if level < LEVELS:
            parent = mags[(c, level + 1, orientation)]
            features[0] = _colocated(parent, shape, 2)
            features[1] = _colocated(_box3(parent), shape, 2)
        for sibling in ORIENTATIONS[:o]:
            m = mags[(c, level, sibling)]
            features[2] += _colocated(m, shape, 1)
            features[3] += _colocated(_box3(m), shape, 1)
        if c > 0:
            luma = mags[(0, level, orientation)]
            features[4] = _colocated(luma, shape, 1)
            features[5] = _colocated(_box3(luma), shape, 1)
        if c == 2:
            features[7] = _colocated(mags[(1, level, orientation)], shape, 1)
        sign_features = None
        if with_signs:
            sign_features = np.zeros((SIGN_FEATURES,) + shape, dtype=np.int32)
            if level < LEVELS:
                sign_features[8] = _colocated(signs[(c, level + 1, orientation)], shape, 2)
            if c > 0:
                sign_features[9] = _colocated(signs[(0, level, orientation)], shape, 1)
            if c == 2:
                sign_features[10] = _colocated(signs[(1, level, orientation)], shape, 1)
        done = np.zeros(shape, dtype=bool)
        for p, where in enumerate(scheme.phases(shape)):
            group = at(features, where)
            group_signs = None if sign_features is None else at(sign_features, where)
            if done.any():   # this band's own decoded neighbours
                near = _neighbours_at(np.where(done, _mag(band), 0), where)
                group[6] = near[0] + near[1] + near[2] + near[3]
                if scheme.features > 8:
                    group[8] = near[4] + near[5] + near[6] + near[7]
                if group_signs is not None:
                    group_signs[:8] = _neighbours_at(np.where(done, np.sign(band), 0).astype(np.int32), where)
            _put(band, where, handler((colour, level - 1, o, p), group, group_signs,
                                      at(band, where) if known else None, (c, rows, cols, where)))
            done[where] = True
        remember((c, level, orientation), band)


def _ll_band(band: np.ndarray, c: int, colour: int, ll_residuals: list[np.ndarray], handler: Handler,
             known: bool, scheme: Scheme) -> np.ndarray:
    """Code the LL band row by row (see the module docstring) -> its residuals."""
    h, w = band.shape
    q = band.astype(np.int64)
    residual = np.zeros((h, w), dtype=np.int64)
    if known:
        above = np.vstack([np.zeros((1, w), dtype=np.int64), q[:-1]])
        d = q - above
        residual[:, 0] = d[:, 0]
        residual[:, 1:] = np.diff(d, axis=1)
    luma = _mag(ll_residuals[0]) if c > 0 else None
    cb = _mag(ll_residuals[1]) if c == 2 else None
    for i in range(h):
        features = np.zeros((scheme.features, w), dtype=np.int32)
        if i > 0:
            r1 = _mag(residual[i - 1])
            features[0] = r1
            features[1] = np.concatenate([[0], r1[:-1]]) + np.concatenate([r1[1:], [0]])
            grad = _mag(np.diff(q[i - 1])) if w > 1 else np.zeros(0, dtype=np.int32)
            features[2] = np.concatenate([[0], grad]) + np.concatenate([grad, [0]])
            if i > 1:
                features[3] = _mag(residual[i - 2])
        if luma is not None:
            features[4] = luma[i]
        if cb is not None:
            features[7] = cb[i]
        values = handler((colour, LL_INDEX, 0, min(i, 1)), features, None, residual[i] if known else None, None)
        if not known:
            residual[i] = values
            q[i] = (q[i - 1] if i > 0 else 0) + np.cumsum(values)
            if np.abs(q[i]).max(initial=0) > MAX_SYMBOL:
                raise FczError("corrupt file: a wavelet LL value outside the format's range")
            band[i] = q[i]
    return residual


def channels_coded(mode: str) -> int:
    """Planes in the payload: Y only for a greyscale image (its Cb and Cr are zero), else all three."""
    return 1 if mode == "L" else 3


# --- letters and escapes -------------------------------------------------------------------------------

def _letters(values: np.ndarray) -> np.ndarray:
    return np.where(np.abs(values) <= DIRECT, values + DIRECT, ESCAPE).astype(np.int32)


def _escape_parts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Escaped values -> (sign 0/1, Exp-Golomb class k, offset within the class: 0 .. 2^k - 1)."""
    magnitude = np.abs(values) - (DIRECT + 1)
    k = np.floor(np.log2(magnitude + 1.0)).astype(np.int64)
    # log2 of float64 can be off by one next to powers of two: settle k exactly with integers.
    k -= (np.left_shift(1, k) > magnitude + 1)
    k += (np.left_shift(1, k + 1) <= magnitude + 1)
    return (values < 0).astype(np.int32), k.astype(np.int32), (magnitude + 1 - np.left_shift(1, k)).astype(np.int32)


_UNIFORM = constriction.stream.model.Uniform()
_SIGN = constriction.stream.model.Uniform(2)
_CLASS = constriction.stream.model.Uniform(MAX_EXP_CLASS + 1)


def _encode_escapes(encoder, values: np.ndarray) -> None:
    values = values[np.abs(values) > DIRECT]
    if values.size == 0:
        return
    if np.abs(values).max() > MAX_VALUE:
        raise ValueError(f"a wavelet value beyond the format's {MAX_VALUE}")
    sign, k, rest = _escape_parts(values.astype(np.int64))
    encoder.encode(sign, _SIGN)
    encoder.encode(k, _CLASS)
    wide = k > 0
    if wide.any():
        encoder.encode(rest[wide], _UNIFORM, np.left_shift(1, k[wide]).astype(np.int32))


def _decode_escapes(decoder, count: int) -> np.ndarray:
    sign = decoder.decode(_SIGN, count).astype(np.int64)
    k = decoder.decode(_CLASS, count).astype(np.int64)
    rest = np.zeros(count, dtype=np.int64)
    wide = k > 0
    if wide.any():
        rest[wide] = decoder.decode(_UNIFORM, np.left_shift(1, k[wide]).astype(np.int32))
    magnitude = np.left_shift(1, k) - 1 + rest + DIRECT + 1
    return np.where(sign == 1, -magnitude, magnitude)


# --- coding --------------------------------------------------------------------------------------------

def _by_row(rows: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions sorted by table row, raster order kept within a row; values per row)."""
    return np.argsort(rows, kind="stable"), np.bincount(rows, minlength=count)


def encode_planes(q: np.ndarray, model: ContextModel, mode: str = "RGB", resolution_order: bool = True) -> bytes:
    """Signed integer planes ``3 x H x W`` -> payload bytes (for ``mode`` "L" only plane 0 is coded).

    ``resolution_order``: format 3's order (``coding_order``); False writes format 2's.
    """
    encoder = constriction.stream.queue.RangeEncoder()
    row_count = model.rows.shape[-2]

    def handler(key: Key, features: np.ndarray, sign_features: np.ndarray | None, values: np.ndarray | None,
                location: Location) -> np.ndarray:
        rows, negate = model.contexts(key, features, sign_features)
        order, sizes = _by_row(rows, row_count)
        letters = _letters(oriented(values, negate))[order]
        ends = np.cumsum(sizes)
        for row in np.flatnonzero(sizes).tolist():
            encoder.encode(letters[ends[row] - sizes[row]:ends[row]], model.model(key, row))
        _encode_escapes(encoder, values)
        return values

    planes = np.ascontiguousarray(q, dtype=np.int32)
    if planes.ndim != 3 or planes.shape[0] != 3:
        raise ValueError(f"wavelet symbols must be 3 x H x W, not {planes.shape}")
    if np.abs(planes).max(initial=0) > MAX_SYMBOL:
        raise ValueError(f"a wavelet symbol beyond the format's +-{MAX_SYMBOL}")
    traverse(planes.copy(), channels_coded(mode), handler, known=True, resolution_order=resolution_order,
             scheme=model.scheme)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_planes(payload: bytes, model: ContextModel, shape: tuple[int, int], mode: str = "RGB",
                  resolution_order: bool = True, reduce: int = 0) -> np.ndarray:
    """Payload bytes -> signed integer planes ``3 x H x W`` (int32); ``shape`` is ``(H, W)``.

    ``resolution_order``: the payload is in format 3's order (else format 2's). ``reduce`` > 0 (format 3
    only) stops before the ``reduce`` finest levels, which stay zero: enough for a 1 / 2^reduce image.
    """
    check_payload_length(payload, model, shape, mode)
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    row_count = model.rows.shape[-2]

    def handler(key: Key, features: np.ndarray, sign_features: np.ndarray | None, values: np.ndarray | None,
                location: Location) -> np.ndarray:
        rows, negate = model.contexts(key, features, sign_features)
        order, sizes = _by_row(rows, row_count)
        letters = np.empty(len(order), dtype=np.int64)
        letters[order] = np.concatenate([decoder.decode(model.model(key, row), int(sizes[row]))
                                         for row in np.flatnonzero(sizes).tolist()] or [np.zeros(0, np.int32)])
        escaped = letters == ESCAPE
        out = oriented(letters - DIRECT, negate)
        if escaped.any():
            out[escaped] = _decode_escapes(decoder, int(escaped.sum()))
        return out

    planes = np.zeros((3,) + tuple(shape), dtype=np.int32)
    try:
        traverse(planes, channels_coded(mode), handler, known=False, resolution_order=resolution_order,
                 reduce=reduce, scheme=model.scheme)
    except FczError:
        raise
    except Exception as exc:  # constriction signals an undecodable stream with its own exception types
        raise FczError(f"corrupt file: entropy-coded payload does not decode ({exc})") from None
    if np.abs(planes).max(initial=0) > MAX_SYMBOL:
        raise FczError("corrupt file: a wavelet value outside the format's range")
    return planes


# --- payload bounds ------------------------------------------------------------------------------------

def class_sizes(shape: tuple[int, int], mode: str = "RGB", scheme: Scheme = SCHEMES[1]) -> dict[Key, int]:
    """How many values each class codes for an image of ``shape`` (H, W)."""
    sizes: dict[Key, int] = {}
    for c in range(channels_coded(mode)):
        colour = min(c, 1)
        for level, orientation, rows, cols in subbands(*shape):
            h, w = rows.stop - rows.start, cols.stop - cols.start
            if orientation == "LL":
                parts = {(colour, LL_INDEX, 0, 0): w if h else 0, (colour, LL_INDEX, 0, 1): (h - 1) * w if h else 0}
            else:
                o = ORIENTATIONS.index(orientation)
                parts = {(colour, level - 1, o, p): n for p, n in enumerate(scheme.pass_sizes(h, w))}
            for key, n in parts.items():
                sizes[key] = sizes.get(key, 0) + n
    return sizes


_SEAL_SLACK_BITS = 64   # as bitstream.entropy: the decoder state sealing may leave implicit


def min_payload_bits(model: ContextModel, shape: tuple[int, int], mode: str = "RGB") -> float:
    """A lower bound on the bits of any payload coding an image of ``shape``: each value's cheapest letter."""
    return sum(n * model.min_bits(key) for key, n in class_sizes(shape, mode, model.scheme).items() if n)


def check_payload_length(payload: bytes, model: ContextModel, shape: tuple[int, int], mode: str = "RGB") -> None:
    """Refuse a payload too short for the values its header claims (see bitstream.entropy)."""
    if 8 * len(payload) + _SEAL_SLACK_BITS < min_payload_bits(model, shape, mode):
        raise FczError(f"corrupt file: a payload of {len(payload)} bytes is too short to hold "
                       f"{channels_coded(mode)} x {shape[0]} x {shape[1]} wavelet values")


# --- counting (for building tables) --------------------------------------------------------------------

Group = tuple[Key, np.ndarray, "np.ndarray | None", np.ndarray]   # key, features, sign features, values


def collect(q: np.ndarray, mode: str = "RGB", scheme: Scheme = SCHEMES[1]) -> Iterator[Group]:
    """(class key, features, sign features or None, values) of every group of one image's planes, in coding order."""
    groups: list[Group] = []

    def handler(key: Key, features: np.ndarray, sign_features: np.ndarray | None, values: np.ndarray | None,
                location: Location) -> np.ndarray:
        groups.append((key, features.copy(), None if sign_features is None else sign_features.copy(), values.copy()))
        return values

    traverse(np.ascontiguousarray(q, dtype=np.int32).copy(), channels_coded(mode), handler, known=True,
             scheme=scheme)
    return iter(groups)


def letters(values: np.ndarray) -> np.ndarray:
    """Values -> alphabet letters (``ESCAPE`` for |v| > 31)."""
    return _letters(values)


def escape_cost(values: np.ndarray) -> np.ndarray:
    """Bits each value's escape costs beyond its letter (0 for |v| <= DIRECT): sign, class, remainder."""
    cost = np.zeros(values.shape, dtype=np.float64)
    big = np.abs(values) > DIRECT
    if big.any():
        _, k, _ = _escape_parts(values[big].astype(np.int64))
        cost[big] = 1 + np.log2(MAX_EXP_CLASS + 1) + k
    return cost
