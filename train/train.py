"""Two-stage training of a facecodec autoencoder, in one readable loop.

    python -m facecodec.train.train train/configs/theis_c24.toml --stage 1
    python -m facecodec.train.train train/configs/theis_c24.toml --stage 2 [--bits 3]

Stage 1 trains the whole autoencoder on MSE with no quantization. Stage 2 starts
from stage 1, freezes the analysis transform (eval mode, so its batch norm uses
its running statistics, as at encode time) and trains the synthesis transform on
features that went through the real per-image quantizer, so it learns to undo
the quantization noise. ``--bits`` overrides the config's stage-2 bit depth, so
several stage-2 runs can start from one stage 1 (the seed's 3- and 6-bit study).

Every run is resumable: a checkpoint is written every ``eval_every`` steps to
``train/runs/NAME/RUN.pt`` and picked up when the same command runs again; RUN is
``stage1`` or ``stage2-Bbit`` (see ``run_file``). Progress goes to
``train/runs/NAME/RUN.log`` (one JSON object per line).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facecodec.models import build_model
from facecodec.train import checkpoints
from facecodec.quantizer import fake_quantize
from facecodec.train.data import RandomCrops, load_folder

RUNS_DIR = Path(__file__).resolve().parent / "runs"
SERIES_BITS = (3, 6)  # stage 1 logs PSNR after quantization at these depths (the seed's study)


def load_config(path: str | Path) -> dict:
    with open(path, "rb") as f:
        config = tomllib.load(f)
    base = Path(path).resolve().parent.parent.parent  # configs/ -> train/ -> project root
    for key in ("train", "val"):
        config["data"][key] = str((base / config["data"][key]).resolve())
    return config


def cosine_lr(step: int, steps: int, lr: float, lr_final: float) -> float:
    warmup = min(200, steps // 5)  # linear warm-up, then cosine decay
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * min(progress, 1.0)))


def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of tensors in [0, 1], after rounding to 8 bits as a decoder would."""
    x8 = (x * 255).round()
    y8 = (x_hat.clamp(0, 1) * 255).round()
    mse = ((x8 - y8) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


@torch.no_grad()
def recalibrate_batchnorm(model, part: torch.nn.Module, images: torch.Tensor, bits: int | None) -> None:
    """Replace ``part``'s batch-norm running statistics by exact averages over whole images.

    During training the running averages trail weights that keep moving and see
    only small crops; at encode and decode time the network sees whole faces.
    Re-measuring them once on whole training faces closed a gap of 3 dB between
    train-mode and eval-mode PSNR in the first runs.
    """
    norms = [m for m in part.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches below
    model.eval()
    part.train()
    for batch in images.split(25):
        y = model.encode(batch)
        if part is not model.g_a:
            model.decode(fake_quantize(y, bits) if bits is not None else y)
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


@torch.no_grad()
def evaluate(model, val: torch.Tensor, bits: int | None) -> float:
    model.eval()
    scores = []
    for batch in val.split(25):
        y = model.encode(batch)
        if bits is not None:
            y = fake_quantize(y, bits)
        scores.append(psnr(batch, model.decode(y)))
    return torch.cat(scores).mean().item()


def run_file(stage: int, bits: int | None) -> str:
    """Checkpoint and log name (without suffix) of one training stage."""
    if stage == 1:
        return "stage1"
    return f"stage2-{bits}bit" if bits else "stage2"  # rate-distortion models have no bit depth


def start_run(config: dict, stage: int, bits: int | None, threads: int) -> tuple[Path, Path, str]:
    """Checkpoint path, log path and device of one stage; also sets torch's threads and seed."""
    run_dir = RUNS_DIR / config["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / f"{run_file(stage, bits)}.pt"
    torch.set_num_threads(threads)
    torch.manual_seed(config["seed"])
    return ckpt_path, ckpt_path.with_suffix(".log"), "cuda" if torch.cuda.is_available() else "cpu"


def to_tensor(images: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div(255).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--stage", type=int, choices=(1, 2), required=True)
    parser.add_argument("--bits", type=int, help="stage 2's quantizer bits (default: the config's)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    config = load_config(args.config)
    stage = config[f"stage{args.stage}"]
    bits = (args.bits or stage["bits"]) if args.stage == 2 else None  # stage 1: no quantization
    ckpt_path, log_path, device = start_run(config, args.stage, bits, args.threads)

    model = build_model(config["architecture"], channels=config["channels"]).to(device)
    if args.stage == 2:
        stage1 = torch.load(ckpt_path.with_name(f"{run_file(1, None)}.pt"), map_location=device, weights_only=True)
        model.load_state_dict(stage1["model"])
        model.g_a.requires_grad_(False)
        trainable = model.g_s.parameters()
    else:
        trainable = model.parameters()
    optimizer = torch.optim.Adam(trainable, lr=stage["lr"])

    step, elapsed_before = checkpoints.resume(ckpt_path, model, optimizer, device)
    started = time.time()

    images = load_folder(config["data"]["train"], cache_dir=RUNS_DIR / "cache")
    crops = RandomCrops(images, stage["crop"], stage["batch_size"], stage["max_scale"], seed=config["seed"] * 1000 + step)
    val = to_tensor(load_folder(config["data"]["val"], limit=config["data"]["val_images"]), device)
    calibration = to_tensor(images[-config["data"]["calibration_images"]:], device)

    if args.stage == 2 and step == 0:  # the frozen encoder keeps these statistics for good
        recalibrate_batchnorm(model, model.g_a, calibration, bits)

    while step < stage["steps"]:
        lr = cosine_lr(step, stage["steps"], stage["lr"], stage["lr_final"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        if args.stage == 2:
            model.g_a.eval()
        x = crops.next_batch().to(device)
        if args.stage == 2:
            with torch.no_grad():
                y = fake_quantize(model.encode(x), bits)
            x_hat = model.decode(y)
        else:
            x_hat = model(x)
        loss = F.mse_loss(x_hat, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1

        if step % 50 == 0:
            print(f"stage {args.stage} step {step}/{stage['steps']} loss {loss.item():.5f} "
                  f"({-10 * math.log10(max(loss.item(), 1e-10)):.2f} dB) lr {lr:.2e} "
                  f"{time.time() - started:.0f}s", flush=True)
        if step == stage["steps"]:
            recalibrate_batchnorm(model, model if args.stage == 1 else model.g_s, calibration, bits)
        if step % stage["eval_every"] == 0 or step == stage["steps"]:
            record = {"step": step, "elapsed_s": round(elapsed_before + time.time() - started, 1),
                      "val_psnr": round(evaluate(model, val, None), 3)}
            for b in [bits] if bits else SERIES_BITS:
                record[f"val_psnr_{b}bit"] = round(evaluate(model, val, b), 3)
            print(json.dumps(record), flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            checkpoints.save(ckpt_path, model, optimizer, step, elapsed_before + time.time() - started)


if __name__ == "__main__":
    main()
