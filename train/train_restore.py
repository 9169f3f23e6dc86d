"""Training of the restoration network (``fcz restore``), in one readable loop.

    python -m facecodec.train.train_restore train/configs/restore_tiramisu.toml
        [--runs-dir train/runs] [--threads N] [--minutes M] [--stop-at STEP]

Each step crops a batch of training faces (facecodec.train.data), gives every
crop a condition drawn uniformly from facecodec.restoration.CONDITIONS, damages it
that way with settings jittered around the benchmark's
(facecodec.damage.damage_for_training) and trains the network to return the
clean crop: MSE on [-1, 1], Adam with the stage's ``weight_decay``, the cosine
schedule of train.py. One network, conditioned on the task, learns every
task from the one CPU budget.

``precision = "bf16"`` trains under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(the loss in float32); the network is always channels-last. On this project's
CPU (AVX-512 BF16, one thread, 16 crops of 64x64) one step of the shipped
network took 0.47 s with both, 0.59 s bf16 contiguous, 1.06 s fp32 channels-last
and 1.40 s fp32 contiguous (README, Restoration).

Resumable like the codec trainers, with their options and files: the
checkpoint ``RUNS_DIR/NAME/stage1.pt`` is written every ``eval_every`` steps
and picked up by the same command; each evaluation appends a JSON line to
``stage1.log`` with the mean PSNR of the network's output on the config's
validation faces, per condition, damaged at the benchmark's settings with fixed
seeds. ``--minutes`` saves and stops after that much wall time.
"""
from __future__ import annotations

import argparse
import math
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facecodec.damage import damage_for_training, damaged_same_size
from facecodec.restoration import CONDITIONS, network_input
from facecodec.tensors import pad_to_stride
from facecodec.train import checkpoints
from facecodec.train.config import ConfigError, load_config, user_errors
from facecodec.train.data import RandomCrops, load_folder
from facecodec.train.train import add_run_options, check_stop_at, cosine_lr, psnr, start_run, to_tensor

PRECISIONS = ("bf16", "fp32")


def precision_context(precision: str):
    """The autocast context a forward pass runs in at ``precision``."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def restore_batch(model: torch.nn.Module, damaged: torch.Tensor, conditions: torch.Tensor, precision: str
                  ) -> torch.Tensor:
    """Damaged ``N x 3 x H x W`` in [0, 1] -> float32 restored in [0, 1] (edge-padded to the stride and back)."""
    height, width = damaged.shape[-2:]
    x = pad_to_stride(network_input(damaged, conditions), model.stride)[0]
    with precision_context(precision):
        out = model(x.contiguous(memory_format=torch.channels_last))
    return (out[..., :height, :width].float() + 1) / 2


def damage_batch(clean: torch.Tensor, conditions: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Float crops in [0, 1] -> each damaged by its condition (as 8-bit images, like files on disk)."""
    pixels = (clean * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    damaged = np.stack([damage_for_training(p, CONDITIONS[c], rng) for p, c in zip(pixels, conditions.tolist())])
    return torch.from_numpy(damaged).permute(0, 3, 1, 2).float().div_(255)


def validation_set(images: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clean validation faces and, per condition, the same faces damaged at the benchmark's settings (seed = index)."""
    clean = to_tensor(images, "cpu")
    damaged = {condition: to_tensor(np.stack([damaged_same_size(image, condition, seed=i)
                                              for i, image in enumerate(images)]), "cpu")
               for condition in CONDITIONS}
    return clean, damaged


@torch.no_grad()
def evaluate(model: torch.nn.Module, clean: torch.Tensor, damaged: dict[str, torch.Tensor], precision: str
             ) -> dict[str, float]:
    """Mean 8-bit PSNR of the network's output per condition, and their mean (``"mean"``)."""
    model.eval()
    scores = {}
    for index, condition in enumerate(CONDITIONS):
        out = [restore_batch(model, batch, torch.full((len(batch),), index), precision)
               for batch in damaged[condition].split(8)]
        scores[condition] = round(psnr(clean, torch.cat(out)).mean().item(), 2)
    scores["mean"] = round(sum(scores.values()) / len(CONDITIONS), 2)
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser, stage_required=False)
    parser.add_argument("--minutes", type=float, help="save and stop after this much wall time (resume later)")
    args = parser.parse_args(argv)
    with user_errors():
        train(args)


def train(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    config.require("stage1.weight_decay", "stage1.precision", by="train_restore.py")
    stage = config.stage(1)
    if stage.precision not in PRECISIONS:
        raise ConfigError(f"{config.path}: `stage1.precision` must be one of {', '.join(PRECISIONS)}, "
                          f"got {stage.precision!r}")
    ckpt_path, log_path, device = start_run(args.runs_dir, config, 1, None, args.threads)
    model = config.build_model()
    if stage.crop % model.stride:
        raise ConfigError(f"{config.path}: `stage1.crop` {stage.crop} is not a multiple of the network's "
                          f"stride {model.stride}")
    model = model.to(memory_format=torch.channels_last)  # measured faster in fp32 and bf16 alike
    optimizer = torch.optim.Adam(model.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    step, elapsed_before = checkpoints.resume(ckpt_path, model, optimizer, device)
    check_stop_at(args.stop_at, step, stage.steps)
    started = time.time()

    images = load_folder(config.data.train, cache_dir=Path(args.runs_dir) / "cache")
    crops = RandomCrops(images, stage.crop, stage.batch_size, stage.max_scale, seed=config.seed * 1000 + step)
    rng = np.random.default_rng(config.seed * 1000 + step + 1)
    val_clean, val_damaged = validation_set(load_folder(config.data.val, limit=config.data.val_images))

    while step < stage.steps:
        lr = cosine_lr(step, stage.steps, stage.lr, stage.lr_final)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        clean = crops.next_batch()
        conditions = torch.from_numpy(rng.integers(len(CONDITIONS), size=len(clean)))
        restored = restore_batch(model, damage_batch(clean, conditions, rng), conditions, stage.precision)
        loss = F.mse_loss(restored * 2 - 1, clean * 2 - 1)  # on [-1, 1], the network's own range
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1

        if step % 50 == 0:
            print(f"step {step}/{stage.steps} loss {loss.item():.5f} "
                  f"({10 * math.log10(4 / max(loss.item(), 1e-10)):.2f} dB) lr {lr:.2e} "
                  f"{time.time() - started:.0f}s", flush=True)
        out_of_time = args.minutes is not None and time.time() - started > 60 * args.minutes
        stopping = step < stage.steps and (out_of_time or (args.stop_at is not None and step >= args.stop_at))
        if step % stage.eval_every == 0 or step == stage.steps or stopping:
            record = {"step": step, "elapsed_s": round(elapsed_before + time.time() - started, 1),
                      "train_loss": round(loss.item(), 6),
                      "val_psnr": evaluate(model, val_clean, val_damaged, stage.precision)}
            checkpoints.log(log_path, record)
            checkpoints.save(ckpt_path, model, optimizer, step, elapsed_before + time.time() - started)
        if stopping:
            why = f"after {args.minutes} minutes" if out_of_time else "(--stop-at)"
            raise SystemExit(f"stopped {why} at step {step} of {stage.steps}; the same command resumes")


if __name__ == "__main__":
    main()
