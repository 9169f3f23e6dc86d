"""Resumable training: one checkpoint file per run stage, replaced atomically.

A checkpoint holds the model, the optimizer, the step reached and the training
seconds spent so far, so a run killed at any moment continues from its last
save with the same command, and its time adds up across sessions. Checkpoints
live in ``RUNS_DIR/NAME/`` (``--runs-dir``, default ``train/runs`` under the
directory the command runs in).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from facecodec.train.config import TrainingError


def load(path: Path, device: str = "cpu", missing: str = "") -> dict:
    """A saved checkpoint (model, optimizer, step, elapsed_s); TrainingError if there is none (``missing``: what to do)."""
    if not path.exists():
        raise TrainingError(f"no checkpoint {path}" + (f": {missing}" if missing else ""))
    return torch.load(path, map_location=device, weights_only=True)


def resume(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: str,
           announce: bool = True) -> tuple[int, float]:
    """Load ``path`` into model and optimizer if it exists -> (step, seconds spent before); ``announce``: say so.

    ``model`` is the bare network, never a DistributedDataParallel wrapper: checkpoints hold
    its own parameter names, whatever number of processes wrote or reads them.
    """
    if not path.exists():
        return 0, 0.0
    ckpt = load(path, device)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if announce:
        print(f"resuming {path} at step {ckpt['step']}")
    return ckpt["step"], ckpt["elapsed_s"]


def save(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, elapsed_s: float) -> None:
    """Write a checkpoint of the bare ``model`` (not a DDP wrapper; see ``resume``); rank 0 alone calls this."""
    # Written beside and renamed over: a kill mid-write leaves the previous checkpoint intact.
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed_s": elapsed_s}, tmp)
    os.replace(tmp, path)


def log(path: Path, record: dict) -> None:
    """Print an evaluation record and append it to the run's log (one JSON object per line)."""
    print(json.dumps(record), flush=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
