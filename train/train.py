"""Two-stage training of a facecodec autoencoder, in one readable loop.

    python -m facecodec.train.train train/configs/theis_c24.toml --stage 1
    python -m facecodec.train.train train/configs/theis_c24.toml --stage 2 [--bits 3]
        [--runs-dir train/runs] [--threads N] [--stop-at STEP]

Stage 1 trains the whole autoencoder on MSE with no quantization. Stage 2 starts
from a finished stage 1, freezes the analysis transform (eval mode, so its batch
norm uses its running statistics, as at encode time) and trains the synthesis
transform on features that went through the real per-image quantizer, so it
learns to undo the quantization noise. ``--bits`` overrides the config's stage-2
bit depth, so several stage-2 runs can start from one stage 1 (the seed's 3- and
6-bit study).

Runs go where the command runs, never into the installed package: every run is
resumable, a checkpoint is written every ``eval_every`` steps to
``RUNS_DIR/NAME/RUN.pt`` and picked up when the same command runs again, where
RUNS_DIR is ``--runs-dir`` (default ``train/runs`` under the current directory:
the checkout's ``train/runs/`` when run from its root, as the README does), NAME
the config's ``name`` and RUN ``stage1`` or ``stage2-Bbit`` (see ``run_file``).
Progress goes to ``RUNS_DIR/NAME/RUN.log`` (one JSON object per line).
``--stop-at STEP`` saves and stops at that step; the same command without it
resumes. Relative data paths in the config count from the current directory
(facecodec.train.config).

Under torchrun (``torchrun --standalone --nproc_per_node=N -m facecodec.train.train
...``) the same loop trains data-parallel with DistributedDataParallel: the
config's batch is split among the processes, each crops from its own shard of
the images, and rank 0 alone prints, evaluates and saves (facecodec.train.distributed
has the rules). Batch norm stays plain ``BatchNorm2d``, each process normalising
its own share of the batch, with rank 0's running statistics copied to the others
by DDP: ``SyncBatchNorm`` would add an all-reduce per layer and pass, PyTorch
supports it on GPUs only (not with gloo on CPU), and the statistics the codec
uses are re-measured on whole faces at each stage's end anyway (on rank 0, which
saves them; at stage 2's start on every process alike, from the same faces).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facecodec.models.ranges import MAX_BITS, MIN_BITS, fake_quantize
from facecodec.train import checkpoints, distributed
from facecodec.train.config import DEFAULT_RUNS_DIR, Config, ConfigError, TrainingError, load_config, user_errors
from facecodec.train.data import RandomCrops, load_folder
from facecodec.train.distributed import Processes

SERIES_BITS = (3, 6)  # stage 1 logs PSNR after quantization at these depths (the seed's study)


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


def checkpoint_path(runs_dir: str | Path, config: Config, stage: int, bits: int | None) -> Path:
    """Where one stage of a config's run keeps its checkpoint: ``RUNS_DIR/NAME/RUN.pt``."""
    return Path(runs_dir) / config.name / f"{run_file(stage, bits)}.pt"


def finished_stage1(runs_dir: str | Path, config: Config, device: str = "cpu") -> dict:
    """Stage 1's final checkpoint, or TrainingError if stage 1 has not run to its last step."""
    path = checkpoint_path(runs_dir, config, 1, None)
    ckpt = checkpoints.load(path, device, missing="run --stage 1 first")
    if ckpt["step"] < config.stage(1).steps:
        raise TrainingError(f"stage 1 stopped at step {ckpt['step']} of {config.stage(1).steps} ({path}): finish it first")
    return ckpt


def start_run(runs_dir: str | Path, config: Config, stage: int, bits: int | None, threads: int | None,
              processes: Processes = distributed.SINGLE) -> tuple[Path, Path, str]:
    """Checkpoint path, log path and device of one stage; also sets torch's threads and seed.

    ``threads`` None: this process's share of the cores. The seed is offset by the
    rank, so processes draw different noise (rank 0 and a single process: the config's).
    """
    ckpt_path = checkpoint_path(runs_dir, config, stage, bits)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads or distributed.default_threads(processes))
    torch.manual_seed(config.seed + processes.rank)
    return ckpt_path, ckpt_path.with_suffix(".log"), processes.device


def add_run_options(parser: argparse.ArgumentParser, stage_required: bool = True) -> None:
    """The options the trainers share."""
    parser.add_argument("config", help="a train/configs/*.toml file")
    parser.add_argument("--stage", type=int, choices=(1, 2), required=stage_required)
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR,
                        help="checkpoints, logs and the image cache go to RUNS_DIR/NAME (default: %(default)s, "
                             "relative to the current directory)")
    parser.add_argument("--threads", type=int,
                        help="torch threads per process (default: the CPU cores, shared equally among the "
                             "processes torchrun starts on this machine)")
    parser.add_argument("--stop-at", type=int, metavar="STEP",
                        help="save and stop once this step is reached (exit status 1); the same command resumes")


def to_tensor(images: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div(255).to(device)


def check_stop_at(stop_at: int | None, step: int, steps: int, processes: Processes = distributed.SINGLE) -> None:
    """A resumed run already at or past ``--stop-at`` (and not finished) stops before training a step."""
    if stop_at is not None and stop_at <= step < steps:
        distributed.stop(f"the checkpoint is already at step {step} (--stop-at {stop_at}); nothing to do", processes)


def reconstruct(model, x: torch.Tensor, bits: int | None) -> torch.Tensor:
    """The training pass: stage 1 (``bits`` None) the whole autoencoder; stage 2 the frozen encoder's quantized features decoded."""
    if bits is None:
        return model(x)
    with torch.no_grad():
        y = fake_quantize(model.encode(x), bits)
    return model.decode(y)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser)
    parser.add_argument("--bits", type=int, help="stage 2's quantizer bits (default: the config's stage2.bits)")
    args = parser.parse_args(argv)
    with user_errors(), distributed.process_group() as processes:
        train(args, processes)


def train(args: argparse.Namespace, processes: Processes = distributed.SINGLE) -> None:
    master = processes.master  # rank 0 (or the one process) prints, evaluates and saves
    config = load_config(args.config)
    config.require("data.calibration_images", by="train.py")
    stage = config.stage(args.stage)
    bits = None  # stage 1: no quantization
    if args.stage == 2:
        bits = args.bits or stage.bits
        if bits is None:
            raise ConfigError(f"{config.path}: train.py stage 2 needs `stage2.bits` or --bits")
        if not MIN_BITS <= bits <= MAX_BITS:
            raise ConfigError(f"stage 2's bit depth must be {MIN_BITS}..{MAX_BITS}, got {bits}")
    batch_size = distributed.per_process_batch(stage, args.stage, processes)
    ckpt_path, log_path, device = start_run(args.runs_dir, config, args.stage, bits, args.threads, processes)

    model = config.build_model().to(device)
    if args.stage == 2:
        model.load_state_dict(finished_stage1(args.runs_dir, config, device)["model"])
        model.g_a.requires_grad_(False)
        trainable = model.g_s.parameters()
    else:
        trainable = model.parameters()
    optimizer = torch.optim.Adam(trainable, lr=stage.lr)

    step, elapsed_before = checkpoints.resume(ckpt_path, model, optimizer, device, announce=master)
    check_stop_at(args.stop_at, step, stage.steps, processes)
    net = distributed.wrap(model, lambda model, x: reconstruct(model, x, bits), processes)
    started = time.time()

    with distributed.master_first(processes):  # rank 0 decodes the images and writes the cache, the others read it
        images = load_folder(config.data.train, cache_dir=Path(args.runs_dir) / "cache")
    crops = RandomCrops(distributed.shard(images, processes), stage.crop, batch_size, stage.max_scale,
                        seed=distributed.rank_seed(config.seed * 1000 + step, processes))
    val = to_tensor(load_folder(config.data.val, limit=config.data.val_images), device) if master else None
    calibration = to_tensor(images[-config.data.calibration_images:], device)  # the same faces on every process

    if args.stage == 2 and step == 0:  # the frozen encoder keeps these statistics for good
        recalibrate_batchnorm(model, model.g_a, calibration, bits)

    while step < stage.steps:
        lr = cosine_lr(step, stage.steps, stage.lr, stage.lr_final)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        if args.stage == 2:
            model.g_a.eval()
        x = crops.next_batch().to(device)
        loss = F.mse_loss(net(x), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under torchrun, DDP averages the gradients of all processes here
        optimizer.step()
        step += 1

        if master and step % 50 == 0:
            print(f"stage {args.stage} step {step}/{stage.steps} loss {loss.item():.5f} "
                  f"({-10 * math.log10(max(loss.item(), 1e-10)):.2f} dB) lr {lr:.2e} "
                  f"{time.time() - started:.0f}s", flush=True)
        if master and step == stage.steps:
            recalibrate_batchnorm(model, model if args.stage == 1 else model.g_s, calibration, bits)
        stopping = args.stop_at is not None and step >= args.stop_at and step < stage.steps
        if master and (step % stage.eval_every == 0 or step == stage.steps or stopping):
            record = {"step": step, "elapsed_s": round(elapsed_before + time.time() - started, 1),
                      "val_psnr": round(evaluate(model, val, None), 3)}
            for b in [bits] if bits else SERIES_BITS:
                record[f"val_psnr_{b}bit"] = round(evaluate(model, val, b), 3)
            print(json.dumps(record), flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            checkpoints.save(ckpt_path, model, optimizer, step, elapsed_before + time.time() - started)
        if stopping:  # a non-zero exit, so `stage 1 && stage 2` does not go on with an unfinished stage
            distributed.stop(f"stopped at step {step} of {stage.steps} (--stop-at); the same command resumes",
                             processes)
    distributed.barrier(processes)  # the others wait for rank 0's last evaluation and checkpoint


if __name__ == "__main__":
    main()
