"""Stage 2 of the wavelet family: the decoder's post-filter, trained on truly quantized decodes.

    python -m facecodec.train.train_postfilter train/configs/wavelet_pf.toml --stage 2
        [--runs-dir train/runs] [--threads N] [--minutes M] [--stop-at STEP]
    python -m facecodec.train.train_postfilter train/configs/wavelet_pf.toml --export wavelet-v1 [--default]
        [--weights-dir weights]

The wavelet family's stage 1 is the fixed transform with its step table and counted context
tables (``python -m facecodec.train.wavelet_tables``); the config's ``init_weights`` names
the installed weights it produced. Everything they hold stays frozen here, as the seed's
stage 2 freezes the encoder: only the post-filter (facecodec.models.postfilter) learns.

Each step scales ``batch_size`` training faces by a random factor in [1, ``max_scale``]
(LFW frames faces looser than UTKFace), codes each whole face at a random trained level
exactly as the codec does (analysis, dead-zone quantizer, dequantizer, synthesis, 8-bit
rounding: the transform costs about 2 ms a face), and crops the same ``crop`` square from
the decoded and the original face. The loss is the mean over the batch of
``MSE(filtered) / MSE(decoded)``: a ratio, so every quality level counts by its dB gain
rather than by its raw error, which the lowest levels would otherwise dominate.

Resumable like the other trainers (checkpoints and a JSON log in ``RUNS_DIR/NAME/``).
``--export ID`` writes ``init_weights``' tensors plus the trained filter (fp16) as
``WEIGHTS_DIR/ID.safetensors`` and a manifest entry; the bitstream is unchanged, so the
new weights code exactly the symbols the old ones do and only decode them better.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save as save_safetensors

from facecodec.families import family_class
from facecodec.models import wavelet_transform as wt
from facecodec.train.cards import installed_entry
from facecodec.train.wavelet_tables import shrunk
from facecodec.train import checkpoints
from facecodec.train.config import DEFAULT_WEIGHTS_DIR, Config, ConfigError, TrainingError, load_config, user_errors
from facecodec.train.data import load_folder
from facecodec.train.export import check_id, record_in_manifest
from facecodec.train.train import (add_run_options, check_stop_at, checkpoint_path, cosine_lr, psnr, start_run,
                                   to_tensor)
from facecodec.models.networks import state_dict
from facecodec.zoo import weights_tensors

STAGE = 2


def wavelet_roundtrip(face: np.ndarray, model: wt.WaveletTransform, level: int) -> np.ndarray:
    """RGB ``H x W x 3`` uint8 -> what the codec decodes at trained ``level`` (1-based) before its post-filter."""
    steps = model.steps[level - 1].numpy()
    # The fast residuals: they differ from the encoder's exact ones in the last bits only, at a fifth of the time.
    residuals = model.residuals(exact=False)
    y = wt.analysis(face.transpose(2, 0, 1).astype(np.float32), residuals=residuals)
    q = wt.quantize(y, steps, float(model.rounding_offset[level - 1]))
    rgb = wt.synthesis(wt.dequantize(q, steps, float(model.recon_offset[level - 1])), residuals=residuals)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8).transpose(1, 2, 0)


class QuantizedCrops:
    """Batches of (original, decoded, level) crops: whole faces coded at random trained levels, then cropped alike."""

    def __init__(self, images: np.ndarray, model: wt.WaveletTransform, crop: int, batch_size: int,
                 max_scale: float, seed: int) -> None:
        self.images, self.model, self.crop, self.batch_size, self.max_scale = images, model, crop, batch_size, max_scale
        self.rng = np.random.default_rng(seed)
        if min(images.shape[1:3]) / max_scale < crop:
            raise ConfigError(f"crop {crop} does not fit faces of {images.shape[2]}x{images.shape[1]} "
                              f"scaled down by max_scale {max_scale}")

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        originals, decoded = [], []
        levels = self.rng.integers(1, self.model.qualities + 1, self.batch_size)
        for level in levels:
            face = self.images[self.rng.integers(len(self.images))]
            face = shrunk(face, self.rng.uniform(1.0, self.max_scale))
            if self.rng.random() < 0.5:
                face = face[:, ::-1]
            face = np.ascontiguousarray(face)
            coded = wavelet_roundtrip(face, self.model, int(level))
            top = self.rng.integers(face.shape[0] - self.crop + 1)
            left = self.rng.integers(face.shape[1] - self.crop + 1)
            window = (slice(top, top + self.crop), slice(left, left + self.crop))
            originals.append(face[window])
            decoded.append(coded[window])
        return to_tensor(np.stack(originals), "cpu"), to_tensor(np.stack(decoded), "cpu"), torch.from_numpy(levels)


def frozen_model(config: Config) -> wt.WaveletTransform:
    """The config's network with ``init_weights'`` step table, offsets, learned lifting and post-filter loaded
    (an untrained filter where they have none; one they have is fine-tuned)."""
    if config.init_weights is None:
        raise ConfigError(f"{config.path}: train_postfilter.py needs `init_weights`, the weights stage 2 starts from")
    base = installed_entry(config.init_weights)
    if base["architecture"] != "wavelet" or config.architecture != "wavelet":
        raise ConfigError(f"{config.path}: train_postfilter.py trains the wavelet family's post-filter; "
                          f"`architecture` and `init_weights` must be wavelet ones")
    model = config.build_model()
    if model.postfilter is None:
        raise ConfigError(f"{config.path}: set `model.postfilter_layers` (and `postfilter_hidden`) to train a post-filter")
    tensors = weights_tensors(config.init_weights)
    for name in ("steps", "recon_offset", "rounding_offset"):
        getattr(model, name).copy_(torch.from_numpy(tensors[name].astype(np.float32)))
    for part in ("lifting", "postfilter"):   # a post-filter there: this run fine-tunes it
        state = state_dict(tensors, f"{part}.")
        if state and getattr(model, part) is not None:
            getattr(model, part).load_state_dict(state)
    return model


@torch.no_grad()
def evaluate(model: wt.WaveletTransform, originals: torch.Tensor, decoded: dict[int, torch.Tensor]) -> dict:
    """Per trained level: mean PSNR of the plain wavelet decode and of the filtered one, on whole validation faces."""
    model.eval()
    before, after = [], []
    for level, coded in decoded.items():
        q = torch.full((len(coded),), level)
        before.append(round(psnr(originals, coded).mean().item(), 2))
        after.append(round(psnr(originals, model.postfilter(coded, q)).mean().item(), 2))
    return {"psnr_wavelet": before, "psnr_filtered": after,
            "gain_db": [round(a - b, 2) for a, b in zip(after, before)]}


def train(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    if args.stage != STAGE:
        raise TrainingError("the wavelet family's stage 1 is the fixed transform and its counted tables "
                            "(python -m facecodec.train.wavelet_tables), installed as the config's "
                            "`init_weights`; this trainer runs --stage 2")
    stage = config.stage(STAGE)
    config.require(f"stage{STAGE}.clip_grad_norm", by="train_postfilter.py")
    ckpt_path, log_path, device = start_run(args.runs_dir, config, STAGE, None, args.threads)
    if device != "cpu":
        print("note: the wavelet transform runs on the CPU (numpy); the post-filter trains on", device)
    model = frozen_model(config)
    model.postfilter.to(device)
    optimizer = torch.optim.Adam(model.postfilter.parameters(), lr=stage.lr)
    step, elapsed_before = checkpoints.resume(ckpt_path, model, optimizer, device)
    check_stop_at(args.stop_at, step, stage.steps)
    started = time.time()

    images = load_folder(config.data.train, cache_dir=Path(args.runs_dir) / "cache")
    crops = QuantizedCrops(images, model, stage.crop, stage.batch_size, stage.max_scale, seed=config.seed * 1000 + step)
    val_faces = np.asarray(load_folder(config.data.val, limit=config.data.val_images))
    val = to_tensor(val_faces, device)
    val_decoded = {level: to_tensor(np.stack([wavelet_roundtrip(f, model, level) for f in val_faces]), device)
                   for level in range(1, model.qualities + 1)}

    while step < stage.steps:
        lr = cosine_lr(step, stage.steps, stage.lr, stage.lr_final)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.postfilter.train()
        x, coded, level = (t.to(device) for t in crops.next_batch())
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16):
            x_hat = model.postfilter(coded, level)
        mse = ((x_hat.float() - x) ** 2).flatten(1).mean(1)
        mse_coded = ((coded - x) ** 2).flatten(1).mean(1).clamp_min(1e-6)
        loss = (mse / mse_coded).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.postfilter.parameters(), stage.clip_grad_norm)
        optimizer.step()
        step += 1

        if step % 50 == 0:
            gain = -10 * math.log10(max(loss.item(), 1e-10))
            print(f"stage 2 step {step}/{stage.steps} loss {loss.item():.4f} ({gain:+.2f} dB) lr {lr:.2e} "
                  f"{time.time() - started:.0f}s", flush=True)
        out_of_time = args.minutes is not None and time.time() - started > 60 * args.minutes
        stopping = step < stage.steps and (out_of_time or (args.stop_at is not None and step >= args.stop_at))
        if step % stage.eval_every == 0 or step == stage.steps or stopping:
            record = {"step": step, "elapsed_s": round(elapsed_before + time.time() - started, 1),
                      **evaluate(model, val, val_decoded)}
            print(json.dumps(record), flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            checkpoints.save(ckpt_path, model, optimizer, step, elapsed_before + time.time() - started)
        if stopping:
            why = f"after {args.minutes} minutes" if out_of_time else "(--stop-at)"
            raise SystemExit(f"stopped {why} at step {step} of {stage.steps}; the same command resumes")


def export(args: argparse.Namespace) -> Path:
    """``init_weights``' tensors plus the trained filter -> ``WEIGHTS_DIR/ID.safetensors`` and its manifest entry."""
    check_id(args.export, "--export")
    config = load_config(args.config)
    model = frozen_model(config)
    ckpt = checkpoints.load(checkpoint_path(args.runs_dir, config, STAGE, None), missing=f"train {config.path.name} first")
    if ckpt["step"] < config.stage(STAGE).steps:
        raise TrainingError(f"stage 2 stopped at step {ckpt['step']} of {config.stage(STAGE).steps}: finish it first")
    model.load_state_dict(ckpt["model"])
    tensors = {name: array for name, array in weights_tensors(config.init_weights).items()
               if not name.startswith("postfilter.")}
    tensors.update({name: t.half().numpy() for name, t in model.state_dict().items() if name.startswith("postfilter.")})
    blob = save_safetensors({name: np.ascontiguousarray(array) for name, array in sorted(tensors.items())},
                            metadata={"id": args.export, "architecture": config.architecture})
    weights_dir = Path(args.weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / f"{args.export}.safetensors"
    path.write_bytes(blob)

    base = installed_entry(config.init_weights)
    try:
        latent = family_class(base["family"]).for_model(model, args.default_setting)
    except ValueError as e:
        raise TrainingError(f"--default-setting: {e}") from None
    entry = {**{key: value for key, value in base.items() if key not in ("results", "notes")},
             **latent.manifest_fields(),
             "id": args.export, "file": path.name, "model": {**base.get("model", {}), **config.model},
             "sha256": hashlib.sha256(blob).hexdigest(), "config": Path(args.config).as_posix(),
             "init_weights": config.init_weights,
             "training_data": f"{base['training_data']}; the post-filter: every face of {config.data.train}",
             f"stage{STAGE}": {"steps": ckpt["step"], "seconds": round(ckpt["elapsed_s"])},
             "notes": f"{config.init_weights}'s transform, quantizer and context tables with a post-filter trained "
                      f"by python -m facecodec.train.train_postfilter {args.config} --stage 2. {args.notes}".strip()}
    manifest_path = record_in_manifest(weights_dir, entry, default=args.default)
    print(f"wrote {path.resolve()} ({len(blob) / 1e6:.2f} MB) and {manifest_path.resolve()}")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser, stage_required=False)
    parser.add_argument("--minutes", type=float, help="save and stop after this much wall time (resume later)")
    parser.add_argument("--bf16", action="store_true",
                        help="train under bfloat16 autocast: 1.3x faster on a CPU with AVX-512 BF16, many times "
                             "slower on one without (see the README's Training section)")
    parser.add_argument("--export", metavar="ID", help="write the finished filter as weights ID instead of training")
    parser.add_argument("--default", action="store_true", help="with --export: make them the weights fcz encode uses")
    parser.add_argument("--default-setting", type=int,
                        help="with --export: the quality used when none is given (default: the family's)")
    parser.add_argument("--notes", default="", help="with --export: free text for the manifest")
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR,
                        help="with --export: where ID.safetensors and manifest.json go (default: %(default)s)")
    args = parser.parse_args(argv)
    with user_errors():
        if args.export:
            export(args)
        else:
            if args.stage is None:
                raise TrainingError("give --stage 2 to train, or --export ID")
            train(args)


if __name__ == "__main__":
    main()
