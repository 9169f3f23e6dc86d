"""Steps per second of train_rd.py's training step, as one process or under torchrun: how to split the cores.

    python -m facecodec.train.bench_distributed train/configs/gained_q8.toml --threads 2
    torchrun --standalone --nproc_per_node=2 -m facecodec.train.bench_distributed \\
        train/configs/gained_q8.toml --threads 1

Runs the same step as train_rd.py's loop (the config's stage, global batch split
among the processes, each from its own shard, DDP-averaged gradients, clipping,
Adam) for ``--warmup`` untimed steps and then ``--steps`` timed ones, between
barriers, and prints one JSON line from rank 0 (with rank 0's CPU seconds: far
below threads x seconds means other work held the cores). Nothing is saved; the decoded
images are cached in ``RUNS_DIR/cache`` as by the trainers. Results:
train/distributed_results.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from facecodec.train import distributed
from facecodec.train.config import DEFAULT_RUNS_DIR, load_config, user_errors
from facecodec.train.data import RandomCrops, load_folder
from facecodec.train.distributed import Processes
from facecodec.train.train_rd import rd_forward


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a train_rd.py config (train/configs/gained_q8.toml)")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1)
    parser.add_argument("--steps", type=int, default=30, help="timed steps (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: the cores shared equally)")
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR, help="its cache/ holds the decoded images")
    args = parser.parse_args(argv)
    with user_errors(), distributed.process_group() as processes:
        bench(args, processes)


def bench(args: argparse.Namespace, processes: Processes) -> None:
    config = load_config(args.config)
    config.require("lambdas", f"stage{args.stage}.clip_grad_norm", by="bench_distributed.py")
    stage = config.stage(args.stage)
    batch_size = distributed.per_process_batch(stage, args.stage, processes)
    threads = args.threads or distributed.default_threads(processes)
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed + processes.rank)
    device = processes.device

    model = config.build_model().to(device)
    if args.stage == 2:  # trained parameters as in train_rd.py's stage 2 (weights: fresh, the speed is the same)
        model.requires_grad_(False)
        model.g_s.requires_grad_(True)
        model.log_inverse_gain.requires_grad_(True)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=stage.lr)
    net = distributed.wrap(model, lambda model, x, levels: rd_forward(model, x, levels, args.stage), processes)
    lambdas = torch.tensor(config.lambdas, device=device)
    with distributed.master_first(processes):
        images = load_folder(config.data.train, cache_dir=Path(args.runs_dir) / "cache")
    seed = distributed.rank_seed(config.seed * 1000, processes)
    crops = RandomCrops(distributed.shard(images, processes), stage.crop, batch_size, stage.max_scale, seed=seed)
    level_rng = torch.Generator().manual_seed(seed)

    def step() -> None:
        model.train()
        x = crops.next_batch().to(device)
        levels = torch.randint(model.levels, (len(x),), generator=level_rng).to(device)
        x_hat, bpp = net(x, levels)
        distortion = (lambdas[levels] * 255**2 * ((x_hat - x) ** 2).flatten(1).mean(1)).mean()
        loss = distortion + bpp.mean() if args.stage == 1 else distortion
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), stage.clip_grad_norm)
        optimizer.step()

    for _ in range(args.warmup):
        step()
    distributed.barrier(processes)
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    distributed.barrier(processes)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if processes.master:
        print(json.dumps({"config": config.name, "stage": args.stage, "processes": processes.world_size,
                          "threads": threads, "global_batch": stage.batch_size, "crop": stage.crop,
                          "steps": args.steps, "seconds": round(seconds, 2),
                          "rank0_cpu_s": round(cpu_seconds, 2),  # ~ threads x seconds unless cores were busy
                          "steps_per_s": round(args.steps / seconds, 3)}), flush=True)


if __name__ == "__main__":
    main()
