"""Data-parallel training under the standard launcher, shared by train.py and train_rd.py.

    torchrun --standalone --nproc_per_node=2 -m facecodec.train.train_rd CONFIG --stage 1
    (python -m torch.distributed.run ... is the same launcher)

Without the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) a
trainer is one plain process, exactly as before: no process group, every rank
check below true. Under torchrun each process joins a process group (gloo on
CPU, NCCL with CUDA, one GPU per process: ``cuda:LOCAL_RANK``) and trains the
same model wrapped in DistributedDataParallel, which averages the gradients
across processes in every backward pass. The rules the trainers follow:

* The global batch is the config's ``batch_size`` whatever the number of
  processes: each process takes ``batch_size / world_size`` crops
  (``per_process_batch``; it must divide). A step is then the same amount of
  data, the same learning rate and the same gradient (DDP averages equal
  shares) with 1, 2 or 8 processes, so a checkpoint's step means one thing and
  a run resumes with any other number of processes, and timings compare like
  for like.
* Each process crops from its own shard of the training images,
  ``images[rank::world_size]`` (``shard``), with its own random stream
  (``rank_seed``), so no two processes draw the same face in a step; together
  they still sample the whole folder. Rank 0 decodes the folder and writes the
  .npy cache first (``master_first``); the others then map the cache.
* Only rank 0 (``master``) prints, evaluates, writes logs and checkpoints; it
  saves the unwrapped model (``state_dict`` without DDP's ``module.`` prefix),
  so checkpoints, export and resuming do not depend on how they were trained.
  All processes read the checkpoint when they start (the runs folder must be
  visible to all of them: one machine, or a shared file system), and DDP copies
  rank 0's weights and buffers to the others when it wraps the model anyway.
* A deliberate stop (``--stop-at``, ``--minutes``) is taken by all processes at
  the same step (``agree`` makes rank 0's clock decide); after rank 0 has saved,
  rank 0 exits with the message and status 1, the others quietly with 0.
* Threads: by default each process takes an equal share of the CPU cores
  (``default_threads``), so processes x threads <= cores; ``--threads`` overrides.
"""
from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from facecodec.train.config import ConfigError, StageConfig, TrainingError

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Processes:
    """Where this process stands: ``ddp`` False means one plain process (rank 0 of 1)."""

    ddp: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def master(self) -> bool:
        """Rank 0: the one process that prints, evaluates and writes checkpoints and logs."""
        return self.rank == 0

    @property
    def device(self) -> str:
        if not torch.cuda.is_available():
            return "cpu"
        return f"cuda:{self.local_rank}" if self.ddp else "cuda"


SINGLE = Processes()


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(name in os.environ for name in LAUNCHER_VARIABLES)


@contextmanager
def process_group() -> Iterator[Processes]:
    """Join the launcher's process group for the block (nothing without a launcher).

    Under a launcher the block is the rest of the process: once it ends, however it
    ends, the group is torn down and the process exits with the block's status
    (``SystemExit``'s code or message; 1 and the traceback for any other exception),
    skipping interpreter shutdown. Gloo's worker threads can drop the last reference
    to a tensor Python has already let go of (``agree``'s flag, an all_gather's
    output) a moment after the last collective returns; if the interpreter is
    shutting down by then, the thread cannot take the GIL and the process aborts
    ("terminate called without an active exception", about 1 run in 25 here, see
    pytorch/pytorch#179291). With no shutdown there is nothing for them to race.
    """
    if not launched():
        yield SINGLE
        return
    env = os.environ
    processes = Processes(ddp=True, rank=int(env["RANK"]), local_rank=int(env["LOCAL_RANK"]),
                          world_size=int(env["WORLD_SIZE"]),
                          local_world_size=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])))
    if torch.cuda.is_available():
        torch.cuda.set_device(processes.local_rank)
        dist.init_process_group("nccl", device_id=torch.device(processes.device))
    else:
        dist.init_process_group("gloo")
    status = 0
    try:
        yield processes
        dist.barrier()  # leave together: no process tears gloo down while its peer still talks to it
    except SystemExit as stop:
        status = exit_status(stop)
    except BaseException:  # noqa: BLE001 - reported as the interpreter would, then the process ends below
        traceback.print_exc()
        status = 1
    finally:
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def exit_status(stop: SystemExit) -> int:
    """The status the interpreter gives ``stop``; a message is printed to stderr as it would print it."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def default_threads(processes: Processes) -> int:
    """torch threads per process when --threads is not given: the cores shared equally among this machine's processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // processes.local_world_size)


def per_process_batch(stage: StageConfig, number: int, processes: Processes) -> int:
    """Each process's share of the config's (global) batch; ConfigError if the processes cannot share it equally."""
    if stage.batch_size % processes.world_size:
        raise ConfigError(f"stage{number}.batch_size = {stage.batch_size} does not split equally among "
                          f"{processes.world_size} processes; use a number of processes that divides it")
    return stage.batch_size // processes.world_size


def shard(images: np.ndarray, processes: Processes) -> np.ndarray:
    """This process's training images: every world_size-th from its rank on (a view, no copy)."""
    if len(images) < processes.world_size:
        raise TrainingError(f"{len(images)} training images cannot be shared among {processes.world_size} processes")
    return images[processes.rank::processes.world_size]


def rank_seed(seed: int, processes: Processes) -> int:
    """A seed for this process's random stream: ``seed`` itself on rank 0 (a single process draws as before)."""
    if processes.rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, processes.rank]).generate_state(1)[0])


@contextmanager
def master_first(processes: Processes) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. decoding images into the cache); the others run it once rank 0 is through."""
    if not processes.master:
        barrier(processes)
    yield
    if processes.master:
        barrier(processes)


def barrier(processes: Processes) -> None:
    if processes.ddp:
        dist.barrier()


def agree(flag: bool, processes: Processes) -> bool:
    """Rank 0's ``flag`` on every process (e.g. a decision taken by its clock), so all stop at the same step."""
    if not processes.ddp:
        return flag
    value = torch.tensor([int(flag)], device=processes.device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def stop(message: str, processes: Processes) -> None:
    """End a stage early on every process: once rank 0 has saved, it exits with ``message`` (status 1), the rest with 0."""
    barrier(processes)
    raise SystemExit(message if processes.master else 0)


class TrainingPass(nn.Module):
    """``forward(*inputs)`` = ``function(model, *inputs)``: the whole training pass as one module call.

    DistributedDataParallel averages gradients only of passes that go through its
    own forward(); the trainers' passes call ``model.encode``, ``model.decode`` and
    more, so they are wrapped whole.
    """

    def __init__(self, model: nn.Module, function: Callable[..., object]) -> None:
        super().__init__()
        self.model, self.function = model, function

    def forward(self, *inputs):
        return self.function(self.model, *inputs)


def wrap(model: nn.Module, function: Callable[..., object], processes: Processes) -> nn.Module:
    """The training pass ``function(model, ...)`` as a module to call; under torchrun, DDP-wrapped.

    Only parameters that require gradients take part (a frozen encoder in stage 2
    is left out), and every one of those is used in every pass of both trainers,
    so DDP need not search for unused ones (``find_unused_parameters`` False).
    Buffers (the Theis model's batch-norm statistics) are rank 0's on every
    process: DDP broadcasts them before each pass.
    """
    step = TrainingPass(model, function)
    if not processes.ddp:
        return step
    device_ids = [processes.local_rank] if processes.device.startswith("cuda") else None
    return DistributedDataParallel(step, device_ids=device_ids)
