"""Turn a finished checkpoint into shipped weights: ``WEIGHTS_DIR/ID.safetensors`` + a manifest entry.

    python -m facecodec.train.export train/configs/theis_c24.toml --id theis-c24-v1
    python -m facecodec.train.export train/configs/gained_q8.toml --id gained-q8-v1 --default --default-setting 5
        [--runs-dir train/runs] [--weights-dir weights] [--stage 2] [--table-images 2000] [--notes TEXT]

Reads ``RUNS_DIR/NAME/`` (``--runs-dir``, default ``train/runs``) and writes into
WEIGHTS_DIR (``--weights-dir``, default ``weights``), both relative to the
directory the command runs in, never into the installed package: run from the
checkout's root, the weights land in the checkout's ``weights/``, which the
package ships (facecodec.zoo reads them from there).

Writes the network in fp16 (half the size; the decoder's output changes by far
less than one 8-bit level) and the entropy tables: per-channel symbol counts of
the quantized features of ``--table-images`` whole training faces, plus one so
every symbol stays codable, one table for every setting of the model's family
(facecodec.families: quality levels, bit depths), named as that family names
them. Counting real symbols gives integer tables that match what the encoder
emits (better than sampling the training prior), and integers decode identically
on every machine. The manifest entry records the family's fields
(``family``, ``settings``, ``default_setting``: ``--default-setting``, else the
family's default), the config's extra model options and ``lambdas`` where it has
them, the SHA-256, steps and time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from facecodec.bitstream.container import WEIGHTS_ID
from facecodec.bitstream.entropy import symbol_histograms
from facecodec.families import Family, family_class
from facecodec.train.cards import split_entry, write_card_record
from facecodec.tensors import pad_to_stride
from facecodec.train import checkpoints
from facecodec.train.config import (DEFAULT_RUNS_DIR, DEFAULT_WEIGHTS_DIR, TrainingError, load_config,
                                    user_errors)
from facecodec.train.data import load_folder
from facecodec.train.postfilter_onnx import graph_fields
from facecodec.train.train import checkpoint_path, to_tensor
from facecodec.zoo import CODEC, ENTROPY_PREFIX

UTKFACE = "UTKFace faces/train (22,317 aligned 200x200 faces); research use only"  # what the shipped weights saw


def model_family(model: torch.nn.Module, default: int | None = None) -> Family:
    """The family of ``model`` (its ``family``), with every setting the model supports."""
    return family_class(model.family).for_model(model, default)


@torch.no_grad()
def entropy_tables(model: torch.nn.Module, family: Family, images: np.ndarray,
                   settings: Iterable[int] | None = None, batch: int = 50) -> dict[str, torch.Tensor]:
    """Per setting of ``family`` (or only ``settings``): int32 ``C x alphabet`` counts of ``images``' symbols plus one.

    Named ``ENTROPY_PREFIX + family.table_name(setting)``, as facecodec.zoo looks them up.
    """
    model.eval()
    device = next(model.parameters()).device
    histograms = {setting: 0 for setting in (family.settings if settings is None else settings)}
    for start in range(0, len(images), batch):
        y = model.encode(pad_to_stride(to_tensor(images[start:start + batch], device), model.stride)[0])
        for setting in histograms:
            symbols, _ = family.quantize(model, y, setting)
            histograms[setting] = histograms[setting] + symbol_histograms(symbols, family.alphabet(setting))
    return {ENTROPY_PREFIX + family.table_name(setting): torch.from_numpy((counts + 1).astype(np.int32))
            for setting, counts in histograms.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the train/configs/*.toml file the run was trained with")
    parser.add_argument("--id", required=True, help="weights id written into every .fcz file")
    parser.add_argument("--table-images", type=int, default=2000,
                        help="training images whose symbols are counted (at most all of them)")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2, help="checkpoint to export")
    parser.add_argument("--default", action="store_true", help="make these the weights `fcz encode` uses")
    parser.add_argument("--default-setting", type=int,
                        help="the quality level / bit depth used when none is given (default: the family's)")
    parser.add_argument("--training-data", default=UTKFACE, help="the manifest's description of the training data")
    add_output_options(parser)
    args = parser.parse_args(argv)
    with user_errors():
        export(args)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--notes``, ``--runs-dir`` and ``--weights-dir``: what this export and export_restore.py share."""
    parser.add_argument("--notes", default="", help="free text for the manifest: command, time, results")
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR,
                        help="where training wrote RUNS_DIR/NAME (default: %(default)s, relative to the current directory)")
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR,
                        help="where ID.safetensors and manifest.json go (default: %(default)s, relative to the "
                             "current directory: the checkout's weights/ when run from its root)")


def check_id(weights_id: str, option: str = "--id") -> None:
    """TrainingError unless ``weights_id`` can be written into a .fcz header (and so names weights anywhere)."""
    if WEIGHTS_ID.fullmatch(weights_id.encode("ascii", "replace")) is None:
        raise TrainingError(f"{option} {weights_id!r} is not a weights id: lower-case letters, digits, '.', '_', '-' "
                            f"(up to 64, starting with a letter or digit)")


def record_in_manifest(weights_dir: Path, entry: dict, default: bool = False) -> Path:
    """Add ``entry`` to ``WEIGHTS_DIR/manifest.json`` (replacing one of the same id, in its place) -> the manifest's path.

    The manifest keeps the fields the runtime reads; the rest goes into the model card's record (facecodec.train.cards).
    Files the runtime derives from the weights file are written beside it first (the wavelet post-filter's ONNX
    graph: facecodec.train.postfilter_onnx), so no export can ship weights without them.

    ``default``: make these the weights ``fcz encode`` uses; the first codec weights of a new manifest
    become the default anyway. Written beside and renamed over, as several exports may run at once.
    """
    path = Path(weights_dir) / "manifest.json"
    runtime, record = split_entry({**entry, **graph_fields(weights_dir, entry)})
    write_card_record(weights_dir, entry["id"], record)
    manifest = json.loads(path.read_text()) if path.exists() else {"weights": []}
    ids = [e["id"] for e in manifest["weights"]]
    if entry["id"] in ids:  # in its place: the listing's order is what `fcz models` and the benchmarks show
        manifest["weights"][ids.index(entry["id"])] = runtime
    else:
        manifest["weights"].append(runtime)
    if default or ("default" not in manifest and entry.get("kind", CODEC) == CODEC):
        manifest["default"] = entry["id"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def export(args: argparse.Namespace) -> Path:
    """Write the weights file and its manifest entry -> the weights file's path."""
    check_id(args.id)
    if args.table_images < 1:
        raise TrainingError("--table-images must be at least 1")
    config = load_config(args.config)
    bits = config.stage(2).bits  # names train.py's stage-2 run; None for runs without a bit depth
    stages = {stage: checkpoints.load(checkpoint_path(args.runs_dir, config, stage, bits if stage == 2 else None),
                                      missing=f"train stage {stage} of {config.path.name} first (or pass --runs-dir)")
              for stage in range(1, args.stage + 1)}
    model = config.build_model()
    model.load_state_dict(stages[args.stage]["model"])
    model.eval()
    try:
        family = model_family(model, args.default_setting)
    except ValueError as e:
        raise TrainingError(f"--default-setting: {e}") from None

    images = load_folder(config.data.train, cache_dir=Path(args.runs_dir) / "cache")
    picks = np.random.default_rng(0).choice(len(images), min(args.table_images, len(images)), replace=False)
    tensors = {name: (t.half() if t.is_floating_point() else t) for name, t in model.state_dict().items()}
    tensors.update(entropy_tables(model, family, images[np.sort(picks)]))

    weights_dir = Path(args.weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / f"{args.id}.safetensors"
    save_file(tensors, path, metadata={"id": args.id, "architecture": config.architecture})

    options = {key: value for key, value in config.model.items() if key != "channels"}  # the manifest has channels
    manifest_path = record_in_manifest(weights_dir, {
        "id": args.id,
        "file": path.name,
        "architecture": config.architecture,
        "channels": model.channels,
        "stride": model.stride,
        **family.manifest_fields(),
        **({"model": options} if options else {}),
        **({"lambdas": list(config.lambdas)} if config.lambdas is not None else {}),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "training_data": args.training_data,
        "config": str(Path(args.config).as_posix()),
        **{f"stage{stage}": {"steps": c["step"], "seconds": round(c["elapsed_s"])} for stage, c in stages.items()},
        "notes": args.notes,
    }, default=args.default)
    print(f"wrote {path.resolve()} ({path.stat().st_size / 1e6:.1f} MB) and {manifest_path.resolve()}")
    return path


if __name__ == "__main__":
    main()
