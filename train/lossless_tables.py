"""Build the lossless weights: context tables counted on the integer 5/3 planes of training faces.

    python -m facecodec.train.lossless_tables [--train ../shared/data/faces/train] [--images 600]
        [--max-scale 1.6] [--id lossless-v1] [--weights-dir weights]

Nothing is trained by gradient and there is no step to choose: the transform is the reversible one of
facecodec.models.reversible, and its integer planes are the symbols. This fits, exactly as
facecodec.train.wavelet_tables does for one quality (``fit_context_model`` with unit steps, which leave the
integers as they are), the context weights, bucket thresholds, sign votes and letter counts of context scheme 2
on ``--images`` training faces (seed 0), each shrunk by a random factor up to ``--max-scale`` first so that the
tables also know smaller faces than UTKFace's 200 pixels. Writes ``ID.safetensors`` (``entropy.quality1`` and its
``.weights``, ``.thresholds``, ``.sign_weights``, ``.sign_thresholds``) and the manifest entry (family
``lossless``). Needs scipy (the `bench` extra); about 4 minutes for 600 faces on 2 busy cores.
"""
from __future__ import annotations

import hashlib
import shlex
import sys
import time
from typing import Sequence

import numpy as np

from facecodec.bitstream import contexts as wc
from facecodec.bitstream import subbands as ws
from facecodec.models import reversible
from facecodec.train.wavelet_tables import as_uint16, fit_context_model, load_faces, scaled_down, table_arguments

SCHEME = wc.SCHEMES[2]
UNIT_STEPS = np.ones((3, ws.LEVELS + 1, 3), dtype=np.float32)
KEEP_INTEGERS = 0.5     # the quantizer's offset: floor(|v| + 0.5) = |v| for an integer v


def build(faces: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors of a lossless weights file, from training faces (H x W x 3 uint8)."""
    planes = [reversible.analysis(face.transpose(2, 0, 1)).astype(np.float64) for face in faces]
    model = fit_context_model(planes, UNIT_STEPS, KEEP_INTEGERS, scheme=SCHEME)
    name = "entropy.quality1"
    return {name: as_uint16(model.counts), f"{name}.weights": model.weights, f"{name}.thresholds": model.thresholds,
            f"{name}.sign_weights": model.sign_weights, f"{name}.sign_thresholds": model.sign_thresholds}


def manifest_entry(weights_id: str, images: int, max_scale: float, seconds: float, command: str) -> dict:
    return {
        "id": weights_id, "file": f"{weights_id}.safetensors", "architecture": "reversible", "channels": 3,
        "stride": 1, "family": "lossless", "settings": [1, 1], "default_setting": 1,
        "model": {"levels": ws.LEVELS, "qualities": 1, "context_scheme": SCHEME.number},
        "sha256": "",
        "training_data": f"UTKFace faces/train ({images} faces chosen with seed 0, each shrunk by up to "
                         f"{max_scale:g}x, for the count tables only); research use only",
        "tables": {"images": images, "max_scale": max_scale, "seconds": round(seconds)},
        "notes": "No training: JPEG 2000's reversible colour transform and integer 5/3 wavelet (4 levels), "
                 f"context-adaptive integer count tables (context scheme {SCHEME.number}). Built with {command}.",
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = table_arguments(__doc__.split("\n\n")[0], images=600, max_scale=1.6, weights_id="lossless-v1")
    args = parser.parse_args(argv)
    from safetensors.numpy import save

    from facecodec.train.export import record_in_manifest

    started = time.perf_counter()
    faces = scaled_down(load_faces(args.train, args.images, seed=0), args.max_scale)
    tensors = build(faces)
    seconds = time.perf_counter() - started
    command = "python -m facecodec.train.lossless_tables " + shlex.join(sys.argv[1:] if argv is None else argv)
    entry = manifest_entry(args.id, len(faces), args.max_scale, seconds, command)
    blob = save({name: np.ascontiguousarray(array) for name, array in sorted(tensors.items())})
    (args.weights_dir / entry["file"]).write_bytes(blob)
    entry["sha256"] = hashlib.sha256(blob).hexdigest()
    record_in_manifest(args.weights_dir, entry)
    print(f"wrote {args.weights_dir / entry['file']} ({len(blob):,} bytes) and its manifest entry in {seconds:.0f} s")


if __name__ == "__main__":
    main()
