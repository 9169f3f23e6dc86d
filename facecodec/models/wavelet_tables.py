"""Build the wavelet family's weights file: step sizes per quality, and integer context models counted on faces.

    python -m facecodec.models.wavelet_tables [--train ../shared/data/faces/train] [--images 800]
        [--id wavelet-v0] [--weights-dir weights]

Nothing is trained: the transform is the fixed CDF 9/7 wavelet (facecodec.models.wavelet). For every
quality level this quantizes ``--images`` training faces (a fixed random choice, seed 0) and, per
context class (luma/chroma, level, orientation, pass; facecodec.bitstream.wavelet):

1. fits the class's integer context weights: non-negative least squares of the value's capped
   magnitude on the context features (a 5 % sample of the values), scaled to at most 16;
2. sets its 11 bucket thresholds: bucket 0 is activity 0, the others split the positive
   activities of the sample into equally frequent ranges;
3. counts the letters of every value per bucket; the table is ``4 * count + 1``, so every letter
   stays codable.

It writes ``ID.safetensors`` (the transform's step table and reconstruction offsets, and per quality
``entropy.qualityN``, ``entropy.qualityN.weights``, ``entropy.qualityN.thresholds``) and the manifest
entry (not the default weights). Needs scipy (the `bench` extra). 8 minutes for 800 faces and 8 qualities
on 2 busy CPU cores.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from facecodec.bitstream import wavelet as wb
from facecodec.models import wavelet as wt

# The quality ladder: the luma step of a level-1..4 band of unit gain, quality 1 (smallest files) first.
# Tuned on 100 faces/val faces (ideal code lengths, tables from 200 training faces): see the wavelet report.
BASE_STEPS = (42.0, 26.0, 16.0, 10.0, 6.0, 3.7, 2.3, 1.4)   # about 0.17 .. 2.4 bpp on faces/val
CHROMA_FACTOR = 1.0       # chroma steps x this, on top of the colour transform's own gains (1.15, 1.35: worse)
ROUNDING_OFFSET = 0.25    # encoder's dead zone: |q| = floor(|y| / step + 0.25)
RECON_OFFSET = 0.2        # decoder: (|q| + 0.2) * step
COUNT_SCALE, COUNT_FLOOR = 4, 1
SAMPLE = 0.05
MAX_WEIGHT = 16


def step_table(base: float, chroma_factor: float = CHROMA_FACTOR) -> np.ndarray:
    """One quality's steps ``3 x (LEVELS + 1) x 3``: base / sqrt(band gain) / sqrt(colour gain), chroma x factor."""
    gains = wt.subband_gains()
    colour = wt.colour_gains()
    steps = np.ones((3, wb.LEVELS + 1, 3), dtype=np.float32)
    for (level, orientation), gain in gains.items():
        for c in range(3):
            value = base / np.sqrt(gain) / np.sqrt(colour[c]) * (chroma_factor if c else 1.0)
            if orientation == "LL":
                steps[c, wb.LL_INDEX, :] = value
            else:
                steps[c, level - 1, wb.ORIENTATIONS.index(orientation)] = value
    return steps


def load_faces(folder: Path, count: int | None = None, seed: int | None = 0) -> list[np.ndarray]:
    """RGB faces ``H x W x 3`` uint8 from ``folder``: ``count`` of them chosen at random (seed), or the first ones."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if count is not None and count < len(paths):
        if seed is None:
            paths = paths[:count]
        else:
            picks = np.sort(np.random.default_rng(seed).choice(len(paths), count, replace=False))
            paths = [paths[i] for i in picks]
    return [np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths]


def coefficients(faces: Iterable[np.ndarray]) -> list[np.ndarray]:
    return [wt.analysis(face.transpose(2, 0, 1).astype(np.float32)) for face in faces]


def fit_context_model(planes: Sequence[np.ndarray], steps: np.ndarray, rounding_offset: float = ROUNDING_OFFSET,
                      sample: float = SAMPLE, seed: int = 0) -> wb.ContextModel:
    """Context weights, thresholds and counts for one quality from coefficient planes of training faces."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(seed)
    samples: dict[wb.Key, list[tuple[np.ndarray, np.ndarray]]] = {}
    quantized = [wt.quantize(y, steps, rounding_offset) for y in planes]
    for q in quantized:
        for key, features, values in wb.collect(q):
            keep = rng.random(values.size) < sample
            if keep.any():
                samples.setdefault(key, []).append((features[:, keep], values[keep]))
    weights = np.zeros(wb.WEIGHTS_SHAPE, dtype=np.int32)
    thresholds = np.zeros(wb.THRESHOLDS_SHAPE, dtype=np.int32)
    for key, parts in samples.items():
        features = np.concatenate([f for f, _ in parts], axis=1).astype(np.float64)
        target = np.minimum(np.abs(np.concatenate([v for _, v in parts])), wb.CAP).astype(np.float64)
        used = features.any(axis=1)
        w = np.zeros(wb.FEATURES)
        if used.any() and target.any():
            w[used] = nnls(features[used].T, target, maxiter=1000)[0]
        if w.max() > 0:
            w = np.round(w / w.max() * MAX_WEIGHT)
        weights[key] = w.astype(np.int32)
        activity = weights[key].astype(np.int64) @ features.astype(np.int64)
        thresholds[key] = _thresholds(activity)
    counts = np.zeros(wb.TABLE_SHAPE, dtype=np.int64)
    model = wb.ContextModel(np.ones(wb.TABLE_SHAPE, dtype=np.int32), weights, thresholds)
    for q in quantized:
        for key, features, values in wb.collect(q):
            buckets = model.buckets(key, features)
            np.add.at(counts[key], (buckets, wb.letters(values)), 1)
    return wb.ContextModel((counts * COUNT_SCALE + COUNT_FLOOR).astype(np.int32), weights, thresholds)


def _thresholds(activity: np.ndarray) -> np.ndarray:
    """Bucket 0: activity 0; buckets 1..11: equally frequent ranges of the positive activities."""
    positive = np.sort(activity[activity > 0])
    cuts = [1]
    if positive.size:
        for k in range(1, wb.BUCKETS - 1):
            cuts.append(int(positive[min(positive.size - 1, k * positive.size // (wb.BUCKETS - 1))]))
    out = []
    for cut in cuts:  # strictly increasing; a value without data of its own becomes an empty bucket
        out.append(max(cut, out[-1] + 1) if out else cut)
    while len(out) < wb.BUCKETS - 1:
        out.append(out[-1] + 1 if out else 1)
    return np.array(out, dtype=np.int32)


def build(faces: Sequence[np.ndarray], bases: Sequence[float] = BASE_STEPS, chroma_factor: float = CHROMA_FACTOR,
          rounding_offset: float = ROUNDING_OFFSET, recon_offset: float = RECON_OFFSET,
          log=print) -> dict[str, np.ndarray]:
    """Every tensor of a wavelet weights file, from training faces."""
    planes = coefficients(faces)
    tensors = {
        "steps": np.stack([step_table(base, chroma_factor) for base in bases]).astype(np.float32),
        "rounding_offset": np.full(len(bases), rounding_offset, dtype=np.float32),
        "recon_offset": np.full(len(bases), recon_offset, dtype=np.float32),
    }
    for quality, steps in enumerate(tensors["steps"], start=1):
        started = time.perf_counter()
        model = fit_context_model(planes, steps, rounding_offset)
        name = f"entropy.quality{quality}"
        tensors[name], tensors[f"{name}.weights"], tensors[f"{name}.thresholds"] = \
            model.counts, model.weights, model.thresholds
        log(f"quality {quality}: step {bases[quality - 1]:g}, {time.perf_counter() - started:.0f} s")
    return tensors


def manifest_entry(weights_id: str, file: str, digest: str, qualities: int, default: int, images: int,
                   seconds: float, bases: Sequence[float]) -> dict:
    return {
        "id": weights_id, "file": file, "architecture": "wavelet", "channels": 3, "stride": 1,
        "quantizer": "wavelet", "settings": [1, qualities], "default_setting": default,
        "model": {"levels": wb.LEVELS, "qualities": qualities},
        "sha256": digest,
        "training_data": f"UTKFace faces/train ({images} faces chosen with seed 0, for the count tables only); "
                         "research use only",
        "tables": {"images": images, "seconds": round(seconds), "base_steps": list(bases),
                   "chroma_factor": CHROMA_FACTOR, "rounding_offset": ROUNDING_OFFSET,
                   "recon_offset": RECON_OFFSET},
        "notes": "No training: fixed CDF 9/7 wavelet on YCbCr (4 levels), dead-zone quantizer, context-adaptive "
                 "integer count tables. Built with python -m facecodec.models.wavelet_tables "
                 f"--images {images} --id {weights_id}.",
    }


def main(argv: Sequence[str] | None = None) -> None:
    repo = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=repo.parent / "shared" / "data" / "faces" / "train")
    parser.add_argument("--images", type=int, default=800, help="training faces to count tables on")
    parser.add_argument("--id", default="wavelet-v0", help="weights id (file ID.safetensors)")
    parser.add_argument("--weights-dir", type=Path, default=repo / "weights")
    parser.add_argument("--default-setting", type=int, default=5)
    args = parser.parse_args(argv)
    from safetensors.numpy import save

    started = time.perf_counter()
    faces = load_faces(args.train, args.images, seed=0)
    tensors = build(faces)
    blob = save({name: np.ascontiguousarray(array) for name, array in sorted(tensors.items())})
    file = f"{args.id}.safetensors"
    (args.weights_dir / file).write_bytes(blob)
    seconds = time.perf_counter() - started
    entry = manifest_entry(args.id, file, hashlib.sha256(blob).hexdigest(), len(BASE_STEPS), args.default_setting,
                           len(faces), seconds, BASE_STEPS)
    manifest_path = args.weights_dir / "manifest.json"
    listing = json.loads(manifest_path.read_text())
    old = next((i for i, e in enumerate(listing["weights"]) if e["id"] == args.id), None)
    if old is None:
        listing["weights"].append(entry)
    else:
        listing["weights"][old] = entry  # results measured with the old tables no longer hold
    manifest_path.write_text(json.dumps(listing, indent=2) + "\n")
    print(f"wrote {args.weights_dir / file} ({len(blob):,} bytes) and its manifest entry in {seconds:.0f} s")


if __name__ == "__main__":
    main()
