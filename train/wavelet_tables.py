"""Build the wavelet family's weights file: step sizes per quality, and integer context models counted on faces.

    python -m facecodec.train.wavelet_tables [--train ../shared/data/faces/train] [--images 800]
        [--id wavelet-v0] [--weights-dir weights] [--scheme 1|2] [--filter-from ID] [--lowest-level L]
        [--default]

Nothing is trained by gradient: the transform is the fixed CDF 9/7 wavelet (facecodec.models.wavelet_transform).
For every quality level this quantizes ``--images`` training faces (a fixed random choice, seed 0; with
``--max-scale``, each shrunk by a random factor up to it, ``scaled_down``) and,
per context class (luma/chroma, level, orientation, pass; facecodec.bitstream.contexts):

1. fits the class's integer context weights: non-negative least squares of the value's capped
   magnitude on the context features (a 5 % sample of the values), scaled to at most 16;
2. sets its 11 bucket thresholds: bucket 0 is activity 0, the others split the positive
   activities of the sample into equally frequent ranges;
3. scheme 2 only: fits the sign vote, ridge least squares of the sample's nonzero signs on the
   sign features, scaled to integers of at most 16, and cuts its strength into 3 equally
   frequent sign contexts after context 0 (no vote);
4. counts the letters of every value (sign-flipped where the vote is negative) per table row; the
   table is ``4 * count + 1``, so every letter stays codable (scheme 2 stores it as uint16,
   ``as_uint16``).

It writes ``ID.safetensors`` (the transform's step table and reconstruction offsets, and per quality
``entropy.qualityN``, ``entropy.qualityN.weights``, ``entropy.qualityN.thresholds``, in scheme 2
``.sign_weights`` and ``.sign_thresholds``) and the manifest entry (the default weights with
``--default``). ``--filter-from`` ships an installed post-filter with the new tables: wavelet-v2 is
wavelet-v1's steps and filter with scheme-2 tables counted on 2,000 faces,

    python -m facecodec.train.wavelet_tables --images 2000 --max-scale 1.6 --scheme 2 --id wavelet-v2 \
        --filter-from wavelet-v1 --lowest-level -0.5 --default-setting 50 --default

Needs scipy (the `bench` extra). Scheme 1: 8 minutes for 800 faces and 8 qualities on 2 busy CPU
cores; scheme 2: 10 minutes for 2,000 faces on one core.
"""
from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from facecodec.bitstream import contexts as wc
from facecodec.bitstream import subbands as ws
from facecodec.bitstream import wavelet_payload as wb
from facecodec.models import wavelet_transform as wt
from facecodec.models.lifting import LearnedLifting

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
    steps = np.ones((3, ws.LEVELS + 1, 3), dtype=np.float32)
    for (level, orientation), gain in gains.items():
        for c in range(3):
            value = base / np.sqrt(gain) / np.sqrt(colour[c]) * (chroma_factor if c else 1.0)
            if orientation == "LL":
                steps[c, ws.LL_INDEX, :] = value
            else:
                steps[c, level - 1, ws.ORIENTATIONS.index(orientation)] = value
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


def shrunk(face: np.ndarray, scale: float) -> np.ndarray:
    """``face`` (``H x W x 3`` uint8) made ``scale`` (>= 1) times smaller, Lanczos; as it is at 1."""
    if scale <= 1:
        return face
    size = (max(1, round(face.shape[1] / scale)), max(1, round(face.shape[0] / scale)))
    return np.asarray(Image.fromarray(face).resize(size, Image.Resampling.LANCZOS))


def scaled_down(faces: Sequence[np.ndarray], max_scale: float, seed: int = 0) -> list[np.ndarray]:
    """Each face shrunk by a random factor in [1, ``max_scale``], as the post-filter trains
    (train/train_postfilter.py): LFW and most photos frame a face looser than UTKFace's crops, so its
    details sit at finer levels; tables counted on the crops alone then expect too little detail."""
    if max_scale <= 1:
        return list(faces)
    rng = np.random.default_rng(seed)
    return [shrunk(face, rng.uniform(1.0, max_scale)) for face in faces]


def coefficients(faces: Iterable[np.ndarray], residuals: wt.NumpyResiduals | None = None) -> list[np.ndarray]:
    """The encoder's coefficient planes of each face (``residuals``: its learned lifting, if any)."""
    return [wt.analysis(face.transpose(2, 0, 1).astype(np.float32), residuals=residuals) for face in faces]


def load_lifting(path: Path) -> tuple[LearnedLifting, dict[str, str]]:
    """Learned lifting residuals written by ``train_lifting --export`` -> the module and the file's metadata."""
    from safetensors import safe_open

    from facecodec.models.networks import state_dict

    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        arrays = {name: f.get_tensor(name) for name in f.keys()}
    lifting = LearnedLifting(int(meta["learned_levels"]), int(meta["hidden"]))
    lifting.load_state_dict(state_dict(arrays))
    return lifting, meta


def fit_context_model(planes: Sequence[np.ndarray], steps: np.ndarray, rounding_offset: float = ROUNDING_OFFSET,
                      sample: float = SAMPLE, seed: int = 0, scheme: wc.Scheme = wc.SCHEMES[1]) -> wc.ContextModel:
    """Context weights, thresholds and counts for one quality from coefficient planes of training faces."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(seed)
    samples: dict[wc.Key, list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]] = {}
    quantized = [wt.quantize(y, steps, rounding_offset) for y in planes]
    for q in quantized:
        for key, features, sign_features, values in wb.collect(q, scheme=scheme):
            keep = rng.random(values.size) < sample
            if keep.any():
                signs = None if sign_features is None else sign_features[:, keep]
                samples.setdefault(key, []).append((features[:, keep], signs, values[keep]))
    weights = np.zeros(scheme.weights_shape, dtype=np.int32)
    thresholds = np.zeros(scheme.thresholds_shape, dtype=np.int32)
    signed = scheme.sign_contexts > 1
    sign_weights = np.zeros(scheme.sign_weights_shape, dtype=np.int32) if signed else None
    sign_thresholds = np.tile(np.arange(1, scheme.sign_contexts, dtype=np.int32),
                              scheme.sign_thresholds_shape[:-1] + (1,)) if signed else None
    for key, parts in samples.items():
        features = np.concatenate([f for f, _, _ in parts], axis=1).astype(np.float64)
        values = np.concatenate([v for _, _, v in parts])
        target = np.minimum(np.abs(values), wc.CAP).astype(np.float64)
        used = features.any(axis=1)
        w = np.zeros(scheme.features)
        if used.any() and target.any():
            w[used] = nnls(features[used].T, target, maxiter=1000)[0]
        if w.max() > 0:
            w = np.round(w / w.max() * MAX_WEIGHT)
        weights[key] = w.astype(np.int32)
        activity = weights[key].astype(np.int64) @ features.astype(np.int64)
        thresholds[key] = _thresholds(activity)
        if signed and parts[0][1] is not None:
            sign_weights[key], sign_thresholds[key] = _fit_sign_vote(
                np.concatenate([s for _, s, _ in parts], axis=1), values, scheme.sign_contexts)
    counts = np.zeros(scheme.table_shape, dtype=np.int64)
    model = wc.ContextModel(np.ones(scheme.table_shape, dtype=np.int32), weights, thresholds, scheme,
                            sign_weights, sign_thresholds)
    rows = counts.reshape(model.rows.shape)
    for q in quantized:
        for key, features, sign_features, values in wb.collect(q, scheme=scheme):
            context, negate = model.contexts(key, features, sign_features)
            np.add.at(rows[key], (context, wb.letters(wc.oriented(values, negate))), 1)
    return wc.ContextModel((counts * COUNT_SCALE + COUNT_FLOOR).astype(np.int32), weights, thresholds, scheme,
                           sign_weights, sign_thresholds)


def _fit_sign_vote(sign_features: np.ndarray, values: np.ndarray, contexts: int) -> tuple[np.ndarray, np.ndarray]:
    """Scheme 2's sign vote for one class: integer weights (ridge least squares of the nonzero values' signs
    on the sign features, scaled to at most MAX_WEIGHT) and the thresholds that cut the vote's strength
    into ``contexts`` sign contexts: 0 for no vote, then equally frequent ranges."""
    nonzero = values != 0
    x = sign_features[:, nonzero].astype(np.float64).T
    y = np.sign(values[nonzero]).astype(np.float64)
    w = np.zeros(sign_features.shape[0])
    if len(y):
        w = np.linalg.solve(x.T @ x + 1e-3 * np.eye(x.shape[1]), x.T @ y)
    if np.abs(w).max() > 0:
        w = np.round(w / np.abs(w).max() * MAX_WEIGHT)
    strength = np.sort(np.abs(x @ w))
    strength = strength[strength > 0]
    cuts = [1] + [int(strength[k * len(strength) // (contexts - 1)]) if len(strength) else 1
                  for k in range(1, contexts - 1)]
    for k in range(1, len(cuts)):   # strictly increasing, as for the buckets
        cuts[k] = max(cuts[k], cuts[k - 1] + 1)
    return w.astype(np.int32), np.array(cuts, dtype=np.int32)


def as_uint16(counts: np.ndarray) -> np.ndarray:
    """Count tables stored in half the bytes: a row whose largest count passes 65535 is scaled down to it
    (each count at least 1). Only the ratios within a row matter to the coder."""
    rows = counts.reshape(-1, counts.shape[-1]).astype(np.float64)
    largest = rows.max(axis=1, keepdims=True)
    scaled = np.where(largest > 65535, np.maximum(1, np.round(rows * (65535 / largest))), rows)
    return scaled.reshape(counts.shape).astype(np.uint16)


def _thresholds(activity: np.ndarray) -> np.ndarray:
    """Bucket 0: activity 0; buckets 1..11: equally frequent ranges of the positive activities."""
    positive = np.sort(activity[activity > 0])
    cuts = [1]
    if positive.size:
        for k in range(1, wc.BUCKETS - 1):
            cuts.append(int(positive[min(positive.size - 1, k * positive.size // (wc.BUCKETS - 1))]))
    out = []
    for cut in cuts:  # strictly increasing; a value without data of its own becomes an empty bucket
        out.append(max(cut, out[-1] + 1) if out else cut)
    while len(out) < wc.BUCKETS - 1:
        out.append(out[-1] + 1 if out else 1)
    return np.array(out, dtype=np.int32)


def build(faces: Sequence[np.ndarray], bases: Sequence[float] = BASE_STEPS, chroma_factor: float = CHROMA_FACTOR,
          rounding_offset: float = ROUNDING_OFFSET, recon_offset: float = RECON_OFFSET,
          scheme: wc.Scheme = wc.SCHEMES[1], lifting: LearnedLifting | None = None,
          log=print) -> dict[str, np.ndarray]:
    """Every tensor of a wavelet weights file, from training faces (coded through ``lifting``, if given)."""
    planes = coefficients(faces, None if lifting is None else lifting.steps(exact=True))
    tensors = {
        "steps": np.stack([step_table(base, chroma_factor) for base in bases]).astype(np.float32),
        "rounding_offset": np.full(len(bases), rounding_offset, dtype=np.float32),
        "recon_offset": np.full(len(bases), recon_offset, dtype=np.float32),
    }
    if lifting is not None:
        tensors.update({f"lifting.{name}": t.half().numpy() for name, t in lifting.state_dict().items()})
    for quality, steps in enumerate(tensors["steps"], start=1):
        started = time.perf_counter()
        model = fit_context_model(planes, steps, rounding_offset, scheme=scheme)
        name = f"entropy.quality{quality}"
        tensors[f"{name}.weights"], tensors[f"{name}.thresholds"] = model.weights, model.thresholds
        if model.sign_weights is None:      # scheme 1: int32 counts, as wavelet-v0 and wavelet-v1 store them
            tensors[name] = model.counts
        else:
            tensors[name] = as_uint16(model.counts)
            tensors[f"{name}.sign_weights"], tensors[f"{name}.sign_thresholds"] = \
                model.sign_weights, model.sign_thresholds
        log(f"quality {quality}: step {bases[quality - 1]:g}, {time.perf_counter() - started:.0f} s")
    return tensors


def manifest_entry(weights_id: str, file: str, digest: str, qualities: int, default: int, images: int,
                   seconds: float, bases: Sequence[float], command: str, scheme: int = 1,
                   max_scale: float = 1.0) -> dict:
    model = {"levels": ws.LEVELS, "qualities": qualities}
    if scheme != 1:
        model["context_scheme"] = scheme
    return {
        "id": weights_id, "file": file, "architecture": "wavelet", "channels": 3, "stride": 1,
        "family": "wavelet", "settings": [1, qualities], "default_setting": default,
        "model": model,
        "sha256": digest,
        "training_data": f"UTKFace faces/train ({images} faces chosen with seed 0, for the count tables only); "
                         "research use only",
        "tables": {"images": images, "seconds": round(seconds), "base_steps": list(bases),
                   "chroma_factor": CHROMA_FACTOR, "rounding_offset": ROUNDING_OFFSET,
                   "recon_offset": RECON_OFFSET, **({"max_scale": max_scale} if max_scale > 1 else {})},
        "notes": "No training: fixed CDF 9/7 wavelet on YCbCr (4 levels), dead-zone quantizer, context-adaptive "
                 f"integer count tables (context scheme {scheme}). Built with {command}.",
    }


def with_filter_of(entry: dict, tensors: dict[str, np.ndarray], source_id: str) -> dict:
    """Give new tables the post-filter and quality scale of installed weights ``source_id`` (same steps).

    The filter sees only decoded pixels, and those follow from the symbols and the steps alone, so a
    filter trained over one set of tables serves another set over the same steps unchanged.
    """
    from facecodec.train.cards import installed_entry
    from facecodec.zoo import weights_tensors

    source, source_tensors = installed_entry(source_id), weights_tensors(source_id)
    if not np.array_equal(source_tensors["steps"].astype(np.float32), tensors["steps"]):
        raise SystemExit(f"{source_id}'s step table differs from these tables': its post-filter was trained for other steps")
    tensors.update({name: array for name, array in source_tensors.items() if name.startswith("postfilter.")})
    options = {k: v for k, v in source["model"].items() if k.startswith("postfilter_") or k == "continuous_quality"}
    entry["model"].update(options)
    if options.get("continuous_quality"):
        entry["settings"], entry["default_setting"] = source["settings"], source["default_setting"]
    entry["postfilter_from"] = source_id
    if "stage2" in source:
        entry["stage2"] = source["stage2"]
    entry["training_data"] += f"; the post-filter: {source_id}'s ({source['training_data'].split('; the post-filter: ')[-1]})"
    entry["notes"] += f" The post-filter is {source_id}'s, unchanged."
    return entry


def table_arguments(description: str, images: int, max_scale: float, weights_id: str) -> argparse.ArgumentParser:
    """The options every table builder takes (this one, facecodec.train.lossless_tables), with its defaults."""
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--train", type=Path, default=repo.parent / "shared" / "data" / "faces" / "train")
    parser.add_argument("--images", type=int, default=images, help="training faces to count tables on")
    parser.add_argument("--max-scale", type=float, default=max_scale,
                        help="shrink each face by a random factor in [1, this] first (scaled_down)")
    parser.add_argument("--id", default=weights_id, help="weights id (file ID.safetensors)")
    parser.add_argument("--weights-dir", type=Path, default=repo / "weights")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = table_arguments(__doc__.split("\n\n")[0], images=800, max_scale=1.0, weights_id="wavelet-v0")
    parser.add_argument("--default-setting", type=int, default=5)
    parser.add_argument("--default", action="store_true", help="make them the weights fcz encode uses")
    parser.add_argument("--scheme", type=int, choices=sorted(wc.SCHEMES), default=1,
                        help="context scheme (facecodec.bitstream.contexts.Scheme)")
    parser.add_argument("--filter-from", metavar="ID", help="installed wavelet weights whose post-filter and "
                        "quality scale to ship with these tables (their steps must be these)")
    parser.add_argument("--lowest-level", type=float, help="with continuous quality: the level quality 1 "
                        "stands for (facecodec.families.WaveletFamily)")
    parser.add_argument("--lifting-from", type=Path, metavar="FILE", help="learned lifting residuals "
                        "(python -m facecodec.train.train_lifting --export FILE) to count the tables through and ship")
    args = parser.parse_args(argv)
    from safetensors.numpy import save

    from facecodec.train.export import record_in_manifest

    started = time.perf_counter()
    faces = scaled_down(load_faces(args.train, args.images, seed=0), args.max_scale)
    lifting, lifting_meta = load_lifting(args.lifting_from) if args.lifting_from else (None, {})
    tensors = build(faces, scheme=wc.SCHEMES[args.scheme], lifting=lifting)
    seconds = time.perf_counter() - started
    command = "python -m facecodec.train.wavelet_tables " + shlex.join(sys.argv[1:] if argv is None else argv)
    entry = manifest_entry(args.id, f"{args.id}.safetensors", "", len(BASE_STEPS), args.default_setting,
                           len(faces), seconds, BASE_STEPS, command, args.scheme, args.max_scale)
    if args.filter_from:
        entry = with_filter_of(entry, tensors, args.filter_from)
    if lifting is not None:
        entry["model"].update(lifting_levels=lifting.learned_levels, lifting_hidden=lifting.hidden)
        entry["lifting"] = {"steps": int(lifting_meta["steps"]), "seconds": int(lifting_meta["seconds"])}
        entry["notes"] = entry["notes"].replace("No training: fixed CDF 9/7 wavelet",
                                                "CDF 9/7 wavelet with learned lifting residuals (train/train_lifting.py)")
    if args.lowest_level is not None:
        if not entry["model"].get("continuous_quality"):
            raise SystemExit("--lowest-level needs weights with continuous quality (--filter-from such weights)")
        entry["model"]["lowest_level"] = args.lowest_level
    blob = save({name: np.ascontiguousarray(array) for name, array in sorted(tensors.items())})
    file = entry["file"]
    (args.weights_dir / file).write_bytes(blob)
    entry["sha256"] = hashlib.sha256(blob).hexdigest()
    record_in_manifest(args.weights_dir, entry, default=args.default)  # results measured with old tables go
    print(f"wrote {args.weights_dir / file} ({len(blob):,} bytes) and its manifest entry in {seconds:.0f} s")


if __name__ == "__main__":
    main()
