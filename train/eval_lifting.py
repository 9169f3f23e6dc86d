"""Does a learned lifting beat the fixed wavelet? Ideal code lengths and PSNR on faces/val, tables recounted.

    python -m facecodec.train.eval_lifting LIFTING.safetensors [--train-faces 300] [--val-faces 40]

For the fixed transform and for the residuals in ``LIFTING`` (``train_lifting --export``) alike:
scheme-2 context tables counted on ``--train-faces`` faces/train shrunk by up to 1.6x (a choice
the shipped tables never use: seed 5), then on ``--val-faces`` faces/val at levels 2, 4, 6 and 8
the ideal code length of every symbol under those tables (no header; the range coder adds a few
bytes) and the PSNR of the plain inverse, before any post-filter. Prints both curves and the
BD-rate of the learned one against the fixed one. Never run on the test set.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facecodec.train.bdrate import bd_rate
from facecodec.bitstream import contexts as wc
from facecodec.bitstream import wavelet_payload as wb
from facecodec.metrics import psnr
from facecodec.models import wavelet_transform as wt
from facecodec.train import wavelet_tables as tables
from facecodec.models.lifting import LearnedLifting

REPO = Path(__file__).resolve().parents[1]
LEVELS = (2, 4, 6, 8)


def ideal_bits(model: wc.ContextModel, q: np.ndarray, scheme: wc.Scheme) -> float:
    """Bits of symbols ``q`` under ``model`` (its ``code_lengths``)."""
    bits, total = model.code_lengths, 0.0
    for key, features, sign_features, values in wb.collect(q, scheme=scheme):
        rows, negate = model.contexts(key, features, sign_features)
        total += bits[key][rows, wb.letters(wc.oriented(values, negate))].sum() + wb.escape_cost(values).sum()
    return total


def curve(lifting: LearnedLifting | None, train: list[np.ndarray], val: list[np.ndarray]) -> list[tuple[float, float]]:
    """(bpp, PSNR) per level of ``LEVELS``."""
    scheme = wc.SCHEMES[2]
    encode = None if lifting is None else lifting.steps(exact=True)
    decode = None if lifting is None else lifting.steps(exact=False)
    train_planes = tables.coefficients(train, encode)
    val_planes = tables.coefficients(val, encode)
    pixels = sum(face.shape[0] * face.shape[1] for face in val)
    points = []
    for level in LEVELS:
        steps = tables.step_table(tables.BASE_STEPS[level - 1])
        model = tables.fit_context_model(train_planes, steps, scheme=scheme)
        bits, quality = 0.0, []
        for face, y in zip(val, val_planes):
            q = wt.quantize(y, steps, tables.ROUNDING_OFFSET)
            bits += ideal_bits(model, q, scheme)
            rgb = wt.synthesis(wt.dequantize(q, steps, tables.RECON_OFFSET), residuals=decode)
            quality.append(psnr(face, np.clip(np.round(rgb), 0, 255).astype(np.uint8).transpose(1, 2, 0)))
        points.append((bits / pixels, float(np.mean(quality))))
    return points


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lifting", type=Path)
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    parser.add_argument("--train-faces", type=int, default=300)
    parser.add_argument("--val-faces", type=int, default=40)
    args = parser.parse_args(argv)
    train = tables.scaled_down(tables.load_faces(args.faces / "train", args.train_faces, seed=5), 1.6, seed=5)
    val = tables.load_faces(args.faces / "val", args.val_faces, seed=1)
    lifting, meta = tables.load_lifting(args.lifting)
    curves = {}
    for name, transform in (("fixed", None), ("learned", lifting)):
        curves[name] = curve(transform, train, val)
        for level, (bpp, db) in zip(LEVELS, curves[name]):
            print(f"{name} level {level}: {bpp:.4f} bpp, {db:.2f} dB", flush=True)
    (fixed_bpp, fixed_db), (learned_bpp, learned_db) = (zip(*curves[n]) for n in ("fixed", "learned"))
    result = bd_rate(fixed_bpp, fixed_db, learned_bpp, learned_db)
    print(f"BD-rate of {args.lifting.name} ({meta.get('steps')} steps) against the fixed wavelet: {result.percent:+.2f} %")


if __name__ == "__main__":
    main()
