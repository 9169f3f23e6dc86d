"""Turn a restoration run's checkpoint into shipped weights: ``WEIGHTS_DIR/ID.safetensors`` + a manifest entry.

    python -m facecodec.train.export_restore train/configs/restore_tiramisu.toml --id restore-tiramisu-v2
        [--runs-dir train/runs] [--weights-dir weights] [--notes TEXT]

As facecodec.train.export does for codecs: the network of the config's last
stage (stage 2 when the config has one) in fp16 (no entropy tables:
restoration codes nothing), and an entry with ``"kind": "restore"`` in
``WEIGHTS_DIR/manifest.json`` (facecodec.zoo) holding the network's options,
the conditions its input codes (in input-plane order) and those it ``serves``
(the last stage's conditions with a weight above 0: facecodec.zoo gives a task
to the most specialised network), the SHA-256, the steps
and seconds each stage trained and the last validation record of the run's log.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from safetensors.torch import save_file

from facecodec.restoration import CONDITIONS
from facecodec.train import checkpoints
from facecodec.train.config import load_config, user_errors
from facecodec.train.export import UTKFACE, add_output_options, check_id, record_in_manifest
from facecodec.train.train import checkpoint_path
from facecodec.train.train_restore import condition_frequencies
from facecodec.zoo import RESTORE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the train/configs/*.toml file the run was trained with")
    parser.add_argument("--id", required=True, help="weights id of the restoration network")
    add_output_options(parser)
    args = parser.parse_args(argv)
    with user_errors():
        export(args)


def export(args: argparse.Namespace) -> Path:
    """Write the weights file and its manifest entry -> the weights file's path."""
    check_id(args.id)
    config = load_config(args.config, check_data=False)
    stages = [n for n in (1, 2) if getattr(config, f"stage{n}") is not None]
    trained = {n: checkpoints.load(checkpoint_path(args.runs_dir, config, n, None),
                                   missing=f"train {config.path.name}'s stage {n} first (or pass --runs-dir)")
               for n in stages}
    path, ckpt = checkpoint_path(args.runs_dir, config, stages[-1], None), trained[stages[-1]]
    last = config.stage(stages[-1])
    model = config.build_model()
    model.load_state_dict(ckpt["model"])
    tensors = {name: (t.half() if t.is_floating_point() else t).contiguous() for name, t in model.state_dict().items()}
    weights_dir = Path(args.weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    weights_path = weights_dir / f"{args.id}.safetensors"
    save_file(tensors, weights_path, metadata={"id": args.id, "architecture": config.architecture})

    log = path.with_suffix(".log")
    last_eval = json.loads(log.read_text().splitlines()[-1]) if log.exists() else None
    entry = {
        "id": args.id,
        "kind": RESTORE,
        "file": weights_path.name,
        "architecture": config.architecture,
        "model": config.model,
        "conditions": list(CONDITIONS),
        "serves": [c for c, share in zip(CONDITIONS, condition_frequencies(last.conditions, "")) if share > 0],
        **({"init_weights": config.init_weights} if config.init_weights else {}),
        "sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        "training_data": UTKFACE,
        "config": str(Path(args.config).as_posix()),
        **{f"stage{n}": {"steps": c["step"], "seconds": round(c["elapsed_s"])} for n, c in trained.items()},
        **({"validation": last_eval} if last_eval else {}),
        "notes": args.notes,
    }
    manifest_path = record_in_manifest(weights_dir, entry)
    print(f"wrote {weights_path.resolve()} ({weights_path.stat().st_size / 1e6:.1f} MB) and {manifest_path.resolve()}")
    return weights_path


if __name__ == "__main__":
    main()
