"""Context-adaptive range coding of quantized wavelet subbands (the "wavelet" family's payload).

Here: the walk over the planes in the payload's order (``traverse``), which forms each group's
features, and the coding of the values as letters and escapes; also a payload's least length and
the groups the table builder counts. Where the bands sit and in which order they come is
``subbands``; how a value's table is chosen, ``contexts``. FORMAT.md ("Payload of the wavelet
family") specifies what is written; these three modules are the reference. Pure numpy and
constriction: no torch, so ``fcz info`` can check a payload.

The symbols are the signed integer quantization indices ``q`` of ``3 x H x W`` coefficient
planes (``subbands``). Every value coded is mapped to a 64-letter alphabet: ``v + 31`` for
``|v| <= 31`` and ``ESCAPE`` (63) otherwise, whose sign and remainder follow at once as
uniformly coded Exp-Golomb parts, so no value is clipped.

Order (each step a "group" of values; format 3, resolution by resolution)::

    LL band, for each plane coded (Y, Cb, Cr; only Y for a greyscale image): row by row, residual
        r = q - q(row above) - (r of the row so far, summed): q[i] = q[i - 1] + cumsum(r[i])
        (the planar prediction W + N - NW)
    for level 4, 3, 2, 1: for HL, LH, HH: for each plane coded:
        the band's passes: scheme 1, (i + j) even then odd; scheme 2, the four phases of the
        2x2 grid (``contexts.Scheme``)

so a decoder can stop after any level and synthesise a smaller image from the coarse bands
(``decode_planes(reduce=...)``). Format 2 had the same groups plane after plane (all of Y,
then Cb, then Cr); every context reads only bands both orders code earlier, so the two
orders code the same values in the same buckets (``subbands.coding_order``).

Inside a group, each value's table row comes from its context (``contexts``: a bucket of the
activity of values decoded before it, and in scheme 2 a sign context that may negate it).
Values are coded row by row (in raster order within a row), then the group's escapes in
raster order.
"""
from __future__ import annotations

from typing import Callable, Iterator

import constriction
import numpy as np

from .contexts import (ALPHABET, SCHEMES, SIGN_FEATURES, ContextModel, Key, Scheme, at, box3, colocated_at,
                       magnitudes, neighbours_at, oriented, pass_shape, put, Positions)
from .errors import FczError
from .subbands import LEVELS, LL_INDEX, ORIENTATIONS, channels_coded, coding_order, subbands

ESCAPE = ALPHABET - 1                # the last letter: |v| > DIRECT
DIRECT = 31                          # values -31..31 are letters 0..62
MAX_EXP_CLASS = 22                   # an escape's Exp-Golomb class k: remainder + 1 in [2^k, 2^(k+1))
MAX_VALUE = DIRECT + 2 ** (MAX_EXP_CLASS + 1) - 1   # the largest |v| a letter and its escape can carry
MAX_SYMBOL = 2 ** 21                 # the largest |q| of a plane: LL residuals then stay within 4 x that < MAX_VALUE


# --- traversal -----------------------------------------------------------------------------------------

# A group handler gets (class key, features ``scheme.features x n``, sign features ``SIGN_FEATURES x n``
# or None (scheme 1, and the LL band), the values when encoding or None, where the values sit: (plane,
# band rows, band cols, mask within the band), so ``planes[c][rows, cols][mask]`` are the group's
# positions in order, or None for the LL band's residual rows) and returns the group's values: the
# decoded ones when decoding, possibly changed ones when an encoder refines its choice (facecodec.rdoq);
# they are written back before the next group's contexts are formed.
Location = "tuple[int, slice, slice, np.ndarray] | None"
Handler = Callable[[Key, np.ndarray, "np.ndarray | None", "np.ndarray | None", Location], np.ndarray]


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
        mags[key] = magnitudes(band)
        if with_signs:
            signs[key] = np.sign(band).astype(np.int32)

    boxes: dict[tuple[int, int, str], np.ndarray] = {}   # 3x3 sums of ``mags``, made when first read

    def boxed(key: tuple[int, int, str]) -> np.ndarray:
        if key not in boxes:
            boxes[key] = box3(mags[key])
        return boxes[key]

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
        # What each feature reads, as (feature, plane, factor): summed where several planes feed one feature.
        sources = []
        if level < LEVELS:
            parent = (c, level + 1, orientation)
            sources += [(0, mags[parent], 2), (1, boxed(parent), 2)]
        for sibling in ORIENTATIONS[:o]:
            sources += [(2, mags[(c, level, sibling)], 1), (3, boxed((c, level, sibling)), 1)]
        if c > 0:
            sources += [(4, mags[(0, level, orientation)], 1), (5, boxed((0, level, orientation)), 1)]
        if c == 2:
            sources.append((7, mags[(1, level, orientation)], 1))
        sign_sources = []
        if with_signs:
            if level < LEVELS:
                sign_sources.append((8, signs[(c, level + 1, orientation)], 2))
            if c > 0:
                sign_sources.append((9, signs[(0, level, orientation)], 1))
            if c == 2:
                sign_sources.append((10, signs[(1, level, orientation)], 1))
        # This band's values decoded so far (zero elsewhere), padded by a zero border: the passes' neighbours.
        decoded_mags = np.zeros((shape[0] + 2, shape[1] + 2), dtype=np.int32)
        decoded_signs = np.zeros_like(decoded_mags) if with_signs else None
        for p, where in enumerate(scheme.phases(shape)):
            # The group's features, shaped as the pass (``at``), and flat views of them for the handler.
            group = _gathered(sources, scheme.features, shape, where)
            group_signs = _gathered(sign_sources, SIGN_FEATURES, shape, where) if with_signs else None
            if p > 0:
                near = neighbours_at(decoded_mags, where)
                group[6] = near[0] + near[1] + near[2] + near[3]
                if scheme.features > 8:
                    group[8] = near[4] + near[5] + near[6] + near[7]
                if group_signs is not None:
                    for k, plane in enumerate(neighbours_at(decoded_signs, where)):
                        group_signs[k] = plane
            values = handler((colour, level - 1, o, p), group.reshape(len(group), -1),
                             None if group_signs is None else group_signs.reshape(SIGN_FEATURES, -1),
                             at(band, where) if known else None, (c, rows, cols, where))
            put(band, where, values)
            put(decoded_mags[1:-1, 1:-1], where, magnitudes(values))
            if decoded_signs is not None:
                put(decoded_signs[1:-1, 1:-1], where, np.sign(values))
        remember((c, level, orientation), band)


def _gathered(sources: list, count: int, shape: tuple[int, int], where: Positions) -> np.ndarray:
    """``count`` feature planes shaped as a pass, each the sum of its sources read at the pass's positions."""
    group = np.zeros((count,) + pass_shape(shape, where), dtype=np.int32)
    for k, plane, factor in sources:
        group[k] += colocated_at(plane, factor, shape, where)
    return group


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
    luma = magnitudes(ll_residuals[0]) if c > 0 else None
    cb = magnitudes(ll_residuals[1]) if c == 2 else None
    for i in range(h):
        features = np.zeros((scheme.features, w), dtype=np.int32)
        if i > 0:
            r1 = magnitudes(residual[i - 1])
            features[0] = r1
            features[1] = np.concatenate([[0], r1[:-1]]) + np.concatenate([r1[1:], [0]])
            grad = magnitudes(np.diff(q[i - 1])) if w > 1 else np.zeros(0, dtype=np.int32)
            features[2] = np.concatenate([[0], grad]) + np.concatenate([grad, [0]])
            if i > 1:
                features[3] = magnitudes(residual[i - 2])
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
    # A stable sort of 16-bit keys is numpy's radix sort: 4x faster than on the int64 rows (a table has 48 rows).
    return np.argsort(rows.astype(np.int16), kind="stable"), np.bincount(rows, minlength=count)


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
        letters = np.empty(len(order), dtype=np.int32)
        counts = sizes.tolist()
        letters[order] = np.concatenate([decoder.decode(model.model(key, row), counts[row])
                                         for row in np.flatnonzero(sizes).tolist()] or [np.zeros(0, np.int32)])
        escaped = letters == ESCAPE
        out = np.subtract(letters, DIRECT, out=letters)
        if negate is not None:
            np.negative(out, out=out, where=negate)
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
