"""Resumable training: one checkpoint file per run stage, replaced atomically.

A checkpoint holds the model, the optimizer, the step reached and the training
seconds spent so far, so a run killed at any moment continues from its last
save with the same command, and its time adds up across sessions.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


def resume(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: str) -> tuple[int, float]:
    """Load ``path`` into model and optimizer if it exists -> (step, seconds spent before)."""
    if not path.exists():
        return 0, 0.0
    ckpt = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    print(f"resuming {path} at step {ckpt['step']}")
    return ckpt["step"], ckpt["elapsed_s"]


def save(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, elapsed_s: float) -> None:
    # Written beside and renamed over: a kill mid-write leaves the previous checkpoint intact.
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed_s": elapsed_s}, tmp)
    os.replace(tmp, path)
