"""Turn a finished stage-2 checkpoint into shipped weights: ``weights/ID.safetensors`` + a manifest entry.

    python -m facecodec.train.export train/configs/theis_c24.toml --id theis-c24-v1
    python -m facecodec.train.export train/configs/gained_q8.toml --id gained-q8-v1 --default-quality 5

Writes the network in fp16 (half the size; the decoder's output changes by far
less than one 8-bit level) and the entropy tables: per-channel symbol counts of
the quantized features of ``--table-images`` whole training faces, plus one so
every symbol stays codable. Per-image-range models get a table for every bit
depth 1..8, gained models one for every quality level. Counting real symbols
gives integer tables that match what the encoder emits (better than sampling
the training prior), and integers decode identically on every machine.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from facecodec.bitstream.entropy import symbol_histograms
from facecodec.models import build_model
from facecodec.image_io import pad_to_stride
from facecodec.models.gained import SYMBOL_BITS, GainedFactorized
from facecodec.quantizer import MAX_BITS, MIN_BITS, channel_ranges, quantize
from facecodec.train.data import load_folder
from facecodec.train.train import RUNS_DIR, load_config, run_file, to_tensor
from facecodec.zoo import ENTROPY_PREFIX

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@torch.no_grad()
def entropy_tables(model, images: np.ndarray) -> dict[str, torch.Tensor]:
    """Tables named as ``FczHeader.table_name`` spells them, for either kind of quantizer."""
    gained = isinstance(model, GainedFactorized)
    settings = range(1, model.levels + 1) if gained else range(MIN_BITS, MAX_BITS + 1)
    histograms = {setting: 0 for setting in settings}
    for start in range(0, len(images), 50):
        y = model.encode(pad_to_stride(to_tensor(images[start:start + 50], "cpu"), model.stride)[0])
        lo, hi = channel_ranges(y)
        for setting in settings:
            if gained:
                symbols, alphabet = model.symbols(y, setting - 1), 2**SYMBOL_BITS
            else:
                symbols, alphabet = quantize(y, lo, hi, setting), 2**setting
            histograms[setting] = histograms[setting] + symbol_histograms(symbols.long().numpy(), alphabet)
    name = "quality" if gained else "bits"
    return {f"{ENTROPY_PREFIX}{name}{setting}": torch.from_numpy((counts + 1).astype(np.int32))
            for setting, counts in histograms.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--id", required=True, help="weights id written into every .fcz file")
    parser.add_argument("--table-images", type=int, default=2000)
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2, help="checkpoint to export")
    parser.add_argument("--default", action="store_true", help="make these the weights `fcz encode` uses")
    parser.add_argument("--default-quality", type=int, help="gained models: the level used when none is given")
    parser.add_argument("--notes", default="", help="free text for the manifest: command, time, results")
    args = parser.parse_args()

    config = load_config(args.config)
    run_dir = RUNS_DIR / config["name"]
    checkpoint = torch.load(run_dir / f"{run_file(args.stage, config['stage2'].get('bits'))}.pt", map_location="cpu", weights_only=True)
    model_options = config.get("model", {"channels": config.get("channels")})
    model = build_model(config["architecture"], **model_options)
    model.load_state_dict(checkpoint["model"])
    model.eval()

    images = load_folder(config["data"]["train"], cache_dir=RUNS_DIR / "cache")
    picks = np.random.default_rng(0).choice(len(images), args.table_images, replace=False)
    tensors = {name: (t.half() if t.is_floating_point() else t) for name, t in model.state_dict().items()}
    tensors.update(entropy_tables(model, images[np.sort(picks)]))

    path = WEIGHTS_DIR / f"{args.id}.safetensors"
    save_file(tensors, path, metadata={"id": args.id, "architecture": config["architecture"]})
    stages = {stage: torch.load(run_dir / f"{run_file(stage, config['stage2'].get('bits'))}.pt", map_location="cpu", weights_only=True)
              for stage in range(1, args.stage + 1)}

    manifest_path = WEIGHTS_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"weights": []}
    manifest["weights"] = [e for e in manifest["weights"] if e["id"] != args.id] + [{
        "id": args.id,
        "file": path.name,
        "architecture": config["architecture"],
        "channels": model.channels,
        "stride": model.stride,
        **({"quantizer": "gained", "model": {k: v for k, v in model_options.items() if k != "channels"},
            "default_quality": args.default_quality, "lambdas": config["lambdas"]}
           if isinstance(model, GainedFactorized) else {"quantizer": "ranges"}),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "training_data": "UTKFace faces/train (22,317 aligned 200x200 faces); research use only",
        "config": str(Path(args.config).as_posix()),
        **{f"stage{stage}": {"steps": c["step"], "seconds": round(c["elapsed_s"])} for stage, c in stages.items()},
        "notes": args.notes,
    }]
    if args.default or "default" not in manifest:
        manifest["default"] = args.id
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {manifest_path}")


if __name__ == "__main__":
    main()
