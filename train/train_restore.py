"""Training of the restoration network (``fcz restore``), in one readable loop.

    python -m facecodec.train.train_restore train/configs/restore_tiramisu.toml [--stage 1|2]
        [--runs-dir train/runs] [--threads N] [--minutes M] [--stop-at STEP]

Each step crops a batch of training faces (facecodec.train.data), gives every
crop a condition drawn from facecodec.restoration.CONDITIONS (equally often, or as
the stage's ``conditions`` weights say), damages it that way with settings
jittered around the benchmark's (facecodec.damage.damage_for_training) and trains
the network to return the clean crop: MSE on [-1, 1], Adam with the stage's
``weight_decay``, the cosine schedule of train.py. One network, conditioned on
the task, learns every task from the one CPU budget.

Stage 2 (optional, ``[stage2]``) starts from stage 1's finished network with a
fresh optimizer and its own schedule and condition weights: a fine-tune that
spends its steps where stage 1 left the network short. A config with
``init_weights`` starts stage 1 from those installed restoration weights
instead (a specialist: one task fine-tuned out of the general network).

``precision = "bf16"`` trains under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(the loss in float32); the network is always channels-last. On this project's
CPU (AVX-512 BF16, one thread, 16 crops of 64x64) one step of the shipped
network took 0.47 s with both, 0.59 s bf16 contiguous, 1.06 s fp32 channels-last
and 1.40 s fp32 contiguous (README, Restoration).

Resumable like the codec trainers, with their options and files: the
checkpoint ``RUNS_DIR/NAME/stageN.pt`` is written every ``eval_every`` steps
and picked up by the same command; each evaluation appends a JSON line to
``stageN.log`` with the mean PSNR of the network's output on the config's
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

from facecodec.bitstream import FczError
from facecodec.damage import damage_for_training, damaged_same_size
from facecodec.restoration import CONDITIONS, network_input
from facecodec.tensors import pad_to_stride
from facecodec.train import checkpoints
from facecodec.train.config import Config, ConfigError, load_config, user_errors
from facecodec.train.data import RandomCrops, load_folder
from facecodec.train.train import (add_run_options, check_stop_at, cosine_lr, finished_stage1, psnr, start_run,
                                   to_tensor)

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


def installed_network(config: Config) -> dict[str, torch.Tensor]:
    """The state dict of the installed restoration weights ``init_weights`` (a fine-tune's start), checked against the config."""
    from facecodec.zoo import RESTORE, load_restore_weights, manifest_entry

    try:
        entry = manifest_entry(config.init_weights, RESTORE)
    except FczError as e:
        raise ConfigError(f"{config.path}: `init_weights`: {e}") from None
    if (entry["architecture"], entry["model"]) != (config.architecture, config.model):
        raise ConfigError(f"{config.path}: `init_weights` {config.init_weights!r} is a {entry['architecture']} network "
                          f"with {entry['model']}, not this config's [model]")
    return load_restore_weights(config.init_weights).model.state_dict()


def condition_frequencies(weights: dict[str, float] | None, where: str) -> np.ndarray:
    """A config's ``conditions`` weights -> each of CONDITIONS' share of the crops (None: all equal; a
    condition the weights leave out is not trained)."""
    weights = weights or dict.fromkeys(CONDITIONS, 1.0)
    unknown = sorted(set(weights) - set(CONDITIONS))
    if unknown:
        raise ConfigError(f"{where} names unknown conditions {', '.join(unknown)}; known: {', '.join(CONDITIONS)}")
    values = [weights.get(c, 0.0) for c in CONDITIONS]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in values) or not any(values):
        raise ConfigError(f"{where}: weights must be numbers >= 0, not all 0, got {weights}")
    return np.array(values, dtype=np.float64) / sum(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser, stage_required=False)  # default: stage 1
    parser.add_argument("--minutes", type=float, help="save and stop after this much wall time (resume later)")
    args = parser.parse_args(argv)
    with user_errors():
        train(args)


def train(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    number = args.stage or 1
    config.require(f"stage{number}.weight_decay", f"stage{number}.precision", by="train_restore.py")
    stage = config.stage(number)
    if stage.precision not in PRECISIONS:
        raise ConfigError(f"{config.path}: `stage{number}.precision` must be one of {', '.join(PRECISIONS)}, "
                          f"got {stage.precision!r}")
    frequencies = condition_frequencies(stage.conditions, f"{config.path}: `stage{number}.conditions`")
    ckpt_path, log_path, device = start_run(args.runs_dir, config, number, None, args.threads)
    model = config.build_model()
    if stage.crop % model.stride:
        raise ConfigError(f"{config.path}: `stage{number}.crop` {stage.crop} is not a multiple of the network's "
                          f"stride {model.stride}")
    if number == 2:
        model.load_state_dict(finished_stage1(args.runs_dir, config, device)["model"])
    elif config.init_weights:
        model.load_state_dict(installed_network(config))
    model = model.to(memory_format=torch.channels_last)  # measured faster in fp32 and bf16 alike
    optimizer = torch.optim.Adam(model.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    step, elapsed_before = checkpoints.resume(ckpt_path, model, optimizer, device)
    check_stop_at(args.stop_at, step, stage.steps)
    started = time.time()

    images = load_folder(config.data.train, cache_dir=Path(args.runs_dir) / "cache")
    seed = config.seed * 1000 + 100_000 * number + step  # a resumed run and stage 2 draw crops stage 1 did not
    crops = RandomCrops(images, stage.crop, stage.batch_size, stage.max_scale, seed=seed)
    rng = np.random.default_rng(seed + 1)
    val_clean, val_damaged = validation_set(load_folder(config.data.val, limit=config.data.val_images))

    while step < stage.steps:
        lr = cosine_lr(step, stage.steps, stage.lr, stage.lr_final)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        clean = crops.next_batch()
        conditions = torch.from_numpy(rng.choice(len(CONDITIONS), size=len(clean), p=frequencies))
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
