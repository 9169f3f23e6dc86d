"""Bjontegaard delta rate (BD-rate) and reading a rate-distortion curve at a given rate or PSNR.

BD-rate follows Bjontegaard (VCEG-M33) with piecewise cubic (PCHIP) interpolation of
log-rate against PSNR, as in the later VCEG-AL22 / JVET common test conditions: the mean
difference of the two log-rate curves over the PSNR range both cover, as a percentage.
Negative means the test codec needs fewer bits than the anchor for the same PSNR.

Everything here is pure: plain sequences in, numbers (or "no overlap") out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

Range = tuple[float, float]


def pareto_front(rates: Sequence[float], psnrs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The points no other point beats (a lower-or-equal rate with a higher PSNR), sorted by rate.

    Interpolation needs PSNR strictly increasing with rate; a setting that costs more
    bits for no better PSNR (e.g. JPEG near quality 100, or a saturated quantizer) is
    not an operating point anyone would pick, so it is dropped rather than averaged in.
    """
    order = np.lexsort((-np.asarray(psnrs, float), np.asarray(rates, float)))  # by rate, best PSNR first
    kept_r, kept_p = [], []
    for i in order:
        r, p = float(rates[i]), float(psnrs[i])
        if not (math.isfinite(r) and math.isfinite(p)) or r <= 0:
            continue
        if kept_p and p <= kept_p[-1]:
            continue
        kept_r.append(r)
        kept_p.append(p)
    return np.array(kept_r), np.array(kept_p)


@dataclass(frozen=True)
class BdRate:
    percent: float | None        # None when the curves share no PSNR range
    overlap: Range | None        # PSNR range (dB) integrated over
    anchor_psnr: Range           # each curve's PSNR range after pareto_front
    test_psnr: Range

    def text(self) -> str:
        if self.percent is None:
            return (f"no overlap (anchor {self.anchor_psnr[0]:.2f}-{self.anchor_psnr[1]:.2f} dB, "
                    f"test {self.test_psnr[0]:.2f}-{self.test_psnr[1]:.2f} dB)")
        return f"{self.percent:+.1f}%"


def _psnr_range(psnrs: np.ndarray) -> Range:
    return (float(psnrs[0]), float(psnrs[-1])) if len(psnrs) else (math.nan, math.nan)


def bd_rate(anchor_rates: Sequence[float], anchor_psnrs: Sequence[float],
            test_rates: Sequence[float], test_psnrs: Sequence[float]) -> BdRate:
    """Average rate difference of ``test`` against ``anchor`` at equal PSNR, in percent.

    Rates may be in any unit (bpp, bytes) as long as both curves use the same one.
    Each curve needs at least two points on its pareto front; the result is "no overlap"
    (``percent=None``) when the PSNR ranges do not intersect in an interval.
    """
    ra, pa = pareto_front(anchor_rates, anchor_psnrs)
    rt, pt = pareto_front(test_rates, test_psnrs)
    anchor_range, test_range = _psnr_range(pa), _psnr_range(pt)
    lo, hi = max(anchor_range[0], test_range[0]), min(anchor_range[1], test_range[1])
    if len(pa) < 2 or len(pt) < 2 or not hi > lo:
        return BdRate(None, None, anchor_range, test_range)
    integral_a = PchipInterpolator(pa, np.log(ra)).integrate(lo, hi)
    integral_t = PchipInterpolator(pt, np.log(rt)).integrate(lo, hi)
    mean_log_ratio = (integral_t - integral_a) / (hi - lo)
    return BdRate(float((math.exp(mean_log_ratio) - 1) * 100), (lo, hi), anchor_range, test_range)


def psnr_at_rate(rates: Sequence[float], psnrs: Sequence[float], rate: float) -> float | None:
    """PSNR the curve reaches at ``rate`` (PCHIP on log-rate), or None outside its rate range."""
    r, p = pareto_front(rates, psnrs)
    if len(r) < 2 or not r[0] <= rate <= r[-1]:
        return None
    return float(PchipInterpolator(np.log(r), p)(math.log(rate)))


def rate_at_psnr(rates: Sequence[float], psnrs: Sequence[float], psnr: float) -> float | None:
    """Rate the curve needs for ``psnr`` (PCHIP of log-rate on PSNR), or None outside its PSNR range."""
    r, p = pareto_front(rates, psnrs)
    if len(r) < 2 or not p[0] <= psnr <= p[-1]:
        return None
    return float(math.exp(PchipInterpolator(p, np.log(r))(psnr)))


def rate_range(rates: Sequence[float], psnrs: Sequence[float]) -> Range:
    r, _ = pareto_front(rates, psnrs)
    return (float(r[0]), float(r[-1])) if len(r) else (math.nan, math.nan)


def psnr_range(rates: Sequence[float], psnrs: Sequence[float]) -> Range:
    return _psnr_range(pareto_front(rates, psnrs)[1])
