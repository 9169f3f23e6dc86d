"""Rate-distortion optimised quantization for the wavelet family: the encoder's ``--effort``.

The dead-zone quantizer rounds every coefficient alone. Knowing what each letter costs
under the context model that will code it, the encoder can do better: for every detail
coefficient it weighs the value plain rounding gives, one step nearer zero, and zero,
and keeps the one with the least

    (u - reconstruction)^2 + mu * bits

where ``u`` is the coefficient in units of its step and ``bits`` the letter's (and any
escape's) code length in the table its already decided neighbours put it in. The
steps were set so that a unit of ``u^2`` costs the same pixel MSE in every subband
(facecodec.train.wavelet_tables), so one ``mu`` serves the whole image. The high-rate
theory of a uniform quantizer gives ``mu = ln 2 / 6 = 0.1155`` (Sullivan & Wiegand 1998).
Measured on 30 faces/val over all 8 levels of wavelet-v0, against the plain dead-zone
quantizer: BD-rate -1.5 % at mu 0.08, -1.9 % at 0.1155, -1.4 % at 0.16, 0.0 % at 0.22.
``MU`` is 0.08: it keeps every level's PSNR and size where plain rounding puts them (within
0.1 dB and 1 %), so a quality level means the same at every effort, while the larger mu
trade 0.5-0.9 dB for 15-20 % fewer bytes, which a lower level does as well.

The decisions run group by group in the coding order (facecodec.bitstream.wavelet_payload.traverse),
so every context is formed from final values, exactly as the decoder will form it; a
choice does not look ahead at the contexts it changes for later groups. The LL band is
left as rounded (its residuals are few and costly to get wrong). The output is ordinary
symbols: the decoder does not know or care how they were chosen.

Effort levels (facecodec.families.wavelet.WaveletFamily.efforts): 0 is the plain dead-zone quantizer; 1 (the
default) one pass of the above.
"""
from __future__ import annotations

import numpy as np

from facecodec.bitstream import contexts as wc
from facecodec.bitstream import subbands as ws
from facecodec.bitstream import wavelet_payload as wb

MU = 0.08        # see the module docstring


def refine(scaled: np.ndarray, model: wc.ContextModel, recon_offset: float, mode: str = "RGB",
           mu: float = MU) -> np.ndarray:
    """Coefficients in step units ``3 x H x W`` -> signed integer symbols chosen for rate and distortion.

    ``scaled`` is ``y / step`` per coefficient (facecodec.models.wavelet_transform.step_planes); the LL band is
    rounded, as the plain quantizer does.
    """
    bits = model.code_lengths
    rounded = (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int32)
    magnitude = np.abs(scaled).astype(np.float64)

    def handler(key, features, sign_features, values, location):
        if location is None:       # an LL residual row: keep the rounded values
            return values
        # A value rounded to zero has no other candidate: the search weighs the others alone.
        chosen = np.flatnonzero(values)
        if chosen.size == 0:
            return values
        c, rows, cols, where = location
        u = wc.at(magnitude[c][rows, cols], where)[chosen]
        values_chosen = values[chosen]
        sign = np.sign(values_chosen)
        table = bits[key]                                  # rows x ALPHABET
        context, negate = model.contexts(key, features, sign_features)   # a row per value
        context, negate = context[chosen], None if negate is None else negate[chosen]
        best, best_cost = None, None
        for candidate in (np.abs(values_chosen), np.maximum(np.abs(values_chosen) - 1, 0),
                          np.zeros_like(values_chosen)):
            v = sign * candidate
            recon = np.where(candidate > 0, candidate + recon_offset, 0.0)
            rate = table[context, wb.letters(wc.oriented(v, negate))] + wb.escape_cost(v)
            cost = (u - recon) ** 2 + mu * rate
            if best is None:
                best, best_cost = v, cost
            else:
                better = cost < best_cost
                best, best_cost = np.where(better, v, best), np.where(better, cost, best_cost)
        out = values.copy()
        out[chosen] = best
        return out

    planes = rounded.copy()
    wb.traverse(planes, ws.channels_coded(mode), handler, known=True, scheme=model.scheme)
    return planes
