"""Two-stage rate-distortion training of the gained factorized model, in one readable loop.

    python -m facecodec.train.train_rd train/configs/gained_q8.toml --stage 1
    python -m facecodec.train.train_rd train/configs/gained_q8.toml --stage 2
        [--runs-dir train/runs] [--threads N] [--minutes M] [--stop-at STEP]

Every step draws a quality level per image; an image at level ``l`` costs
``lambda[l] * 255^2 * MSE + bits per pixel``, so one run trains every level.

Stage 1 trains everything. The rate is the prior's likelihood of the scaled
features plus uniform noise (a differentiable stand-in for rounding); the
decoder already sees rounded values, through a straight-through gradient.
Stage 2 freezes the encoder and its gains and trains the decoder and its
inverse gains on truly rounded and clipped symbols, with the MSE term only
(with the encoder frozen, the rate no longer moves).

Resumable like train.py, with the same options: checkpoints and a JSON log in
``RUNS_DIR/NAME/`` (``--runs-dir``, default ``train/runs`` under the current
directory). The config must set ``lambdas`` (one per quality level) and both
stages' ``clip_grad_norm``.

Under torchrun (``torchrun --standalone --nproc_per_node=N -m facecodec.train.train_rd
...``) the same loop trains data-parallel with DistributedDataParallel, as
train.py does (facecodec.train.distributed has the rules): the config's batch is
split among the processes, each crops from its own shard of the images and
draws its own quality levels and noise, and rank 0 alone prints, evaluates and
saves. Gradients are averaged across processes before they are clipped, so
every process clips and steps alike.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from facecodec.models.gained import SYMBOL_MAX, SYMBOL_MIN
from facecodec.tensors import pad_to_stride
from facecodec.train import checkpoints, distributed
from facecodec.train.config import ConfigError, load_config, user_errors
from facecodec.train.data import RandomCrops, load_folder
from facecodec.train.distributed import Processes
from facecodec.train.train import (add_run_options, check_stop_at, cosine_lr, finished_stage1, psnr, start_run,
                                   to_tensor)


def bits_per_pixel(model, y: torch.Tensor, level: int, pixels: int) -> torch.Tensor:
    """Rate of scaled features ``y`` (noisy or rounded) under the prior, in bits per image pixel."""
    return -torch.log2(model.prior.likelihood(y, level)).flatten(1).sum(1) / pixels


def rd_forward(model, x: torch.Tensor, levels: torch.Tensor, stage: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (reconstruction, bits per pixel per image) with each image at its own level."""
    pixels = x.shape[2] * x.shape[3]
    with torch.set_grad_enabled(stage == 1 and torch.is_grad_enabled()):
        y = model.encode(pad_to_stride(x, model.stride)[0])  # padded as the codec pads
    x_hat, bpp = torch.empty_like(x), torch.empty(len(x), device=x.device)
    for level in levels.unique().tolist():
        pick = levels == level
        v = model.scale(y[pick], level)
        if stage == 1 and model.training:
            # The rate sees the unclipped values, so it pulls outliers back into the 6-bit range; the clip
            # itself passes no gradient. (A straight-through gradient across the clip, in the first runs, let
            # features grow past it until training diverged.)
            bpp[pick] = bits_per_pixel(model, v + torch.rand_like(v) - 0.5, level, pixels)
            v = v.clamp(SYMBOL_MIN, SYMBOL_MAX)
            q = v + (v.round() - v).detach()  # straight-through rounding: the decoder sees integers
        else:
            q = model.round(v.detach())
            bpp[pick] = bits_per_pixel(model, q, level, pixels).detach()
        x_hat[pick] = model.decode(model.unscale(q, level))[..., :x.shape[2], :x.shape[3]]
    return x_hat, bpp


@torch.no_grad()
def evaluate(model, val: torch.Tensor) -> dict[str, list[float]]:
    """Per level: mean PSNR (8-bit) and mean estimated bpp on whole validation faces, truly rounded."""
    model.eval()
    scores = {"psnr": [], "bpp": []}
    for level in range(model.levels):
        p, b = [], []
        for batch in val.split(25):
            x_hat, bpp = rd_forward(model, batch, torch.full((len(batch),), level), stage=2)
            p.append(psnr(batch, x_hat))
            b.append(bpp)
        scores["psnr"].append(round(torch.cat(p).mean().item(), 2))
        scores["bpp"].append(round(torch.cat(b).mean().item(), 3))
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser)
    parser.add_argument("--minutes", type=float, help="save and stop after this much wall time (resume later)")
    args = parser.parse_args(argv)
    with user_errors(), distributed.process_group() as processes:
        train(args, processes)


def train(args: argparse.Namespace, processes: Processes = distributed.SINGLE) -> None:
    master = processes.master  # rank 0 (or the one process) prints, evaluates and saves
    config = load_config(args.config)
    config.require("lambdas", f"stage{args.stage}.clip_grad_norm", by="train_rd.py")
    stage = config.stage(args.stage)
    batch_size = distributed.per_process_batch(stage, args.stage, processes)
    ckpt_path, log_path, device = start_run(args.runs_dir, config, args.stage, None, args.threads, processes)

    model = config.build_model().to(device)
    lambdas = torch.tensor(config.lambdas, device=device)
    if len(lambdas) != model.levels:
        raise ConfigError(f"{config.path}: {len(lambdas)} lambdas for {model.levels} levels")
    if args.stage == 2:
        model.load_state_dict(finished_stage1(args.runs_dir, config, device)["model"])
        model.requires_grad_(False)
        model.g_s.requires_grad_(True)
        model.log_inverse_gain.requires_grad_(True)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=stage.lr)

    step, elapsed_before = checkpoints.resume(ckpt_path, model, optimizer, device, announce=master)
    check_stop_at(args.stop_at, step, stage.steps, processes)
    net = distributed.wrap(model, lambda model, x, levels: rd_forward(model, x, levels, args.stage), processes)
    started = time.time()

    with distributed.master_first(processes):  # rank 0 decodes the images and writes the cache, the others read it
        images = load_folder(config.data.train, cache_dir=Path(args.runs_dir) / "cache")
    seed = distributed.rank_seed(config.seed * 1000 + step, processes)
    crops = RandomCrops(distributed.shard(images, processes), stage.crop, batch_size, stage.max_scale, seed=seed)
    val = to_tensor(load_folder(config.data.val, limit=config.data.val_images), device) if master else None
    level_rng = torch.Generator().manual_seed(seed)

    while step < stage.steps:
        lr = cosine_lr(step, stage.steps, stage.lr, stage.lr_final)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        x = crops.next_batch().to(device)
        levels = torch.randint(model.levels, (len(x),), generator=level_rng).to(device)
        x_hat, bpp = net(x, levels)
        mse = ((x_hat - x) ** 2).flatten(1).mean(1)
        distortion = (lambdas[levels] * 255**2 * mse).mean()
        loss = distortion + bpp.mean() if args.stage == 1 else distortion
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under torchrun, DDP averages the gradients of all processes here
        torch.nn.utils.clip_grad_norm_(model.parameters(), stage.clip_grad_norm)
        optimizer.step()
        step += 1

        if master and step % 50 == 0:
            db = -10 * math.log10(max(mse.mean().item(), 1e-10))
            print(f"stage {args.stage} step {step}/{stage.steps} loss {loss.item():.4f} "
                  f"mse {db:.2f} dB bpp {bpp.mean().item():.3f} lr {lr:.2e} {time.time() - started:.0f}s", flush=True)
        out_of_time = args.minutes is not None and distributed.agree(time.time() - started > 60 * args.minutes,
                                                                     processes)  # rank 0's clock decides
        stopping = step < stage.steps and (out_of_time or (args.stop_at is not None and step >= args.stop_at))
        if master and (step % stage.eval_every == 0 or step == stage.steps or stopping):
            record = {"step": step, "elapsed_s": round(elapsed_before + time.time() - started, 1), **evaluate(model, val)}
            print(json.dumps(record), flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            checkpoints.save(ckpt_path, model, optimizer, step, elapsed_before + time.time() - started)
        if stopping:  # a non-zero exit, so `stage 1 && stage 2` does not go on with an unfinished stage
            why = f"after {args.minutes} minutes" if out_of_time else "(--stop-at)"
            distributed.stop(f"stopped {why} at step {step} of {stage.steps}; the same command resumes", processes)
    distributed.barrier(processes)  # the others wait for rank 0's last evaluation and checkpoint


if __name__ == "__main__":
    main()
