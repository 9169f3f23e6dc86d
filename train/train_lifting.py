"""Stage 1 of the learned wavelet: fine-tune the lifting residuals (facecodec.models.lifting) end to end.

    python -m facecodec.train.train_lifting [--steps 16000] [--postfilter-from ID] [--out train/runs/lifting]
        [--threads 2] [--device cpu|cuda]
    python -m facecodec.train.train_lifting [--out train/runs/lifting] --export FILE

Starts from a zero-initialised ``LearnedLifting``, which is exactly the fixed wavelet, and keeps the
step tables and offsets of ``--steps-from`` (wavelet-v2). Each step takes ``--batch`` random
``--crop`` squares of training faces, each face shrunk by a random factor up to 1.6
(facecodec.train.wavelet_tables.scaled_down, as the tables and the post-filter see them), codes
them at a random trained quality level and minimises the encoder's own rate-distortion cost
(facecodec.rdoq)::

    loss = sum (x_hat - x)^2 / base_step^2 + MU * bits        (per pixel)

The squared error is in units of the level's base step, so every level weighs alike. As in
Minnen & Singh (2020), the two terms see the quantizer differently: ``x_hat`` is decoded from
what the codec's dead-zone quantizer makes of the coefficients (``quantized``, straight-through
gradient), so the residuals learn the distortion the codec will have; ``bits`` is measured on the
coefficients plus uniform noise by a differentiable stand-in for the context coder
(``ContextRate``). On 40 faces/val (train/eval_lifting.py) this pair measured -2.2 % BD-rate
against the fixed wavelet after 16,000 steps, against -1.4 % with noise for both terms and -0.9 %
with noise and a Laplacian per band.

With ``--postfilter-from ID`` the distortion is measured after that weights' post-filter (frozen,
fed 8-bit pixels rounded straight through): a lifting trained without it learns part of what the
filter already undoes, and the two gains overlap. wavelet-v3's residuals: 16,000 steps, 12,000 more,
then 6,000 with ``--postfilter-from wavelet-v1`` (the README's Training section has the commands).

Checkpoints every ``--save-every`` steps in ``OUT/lifting.pt`` (model, rate model, optimizer,
step, seconds); the same command resumes, and a larger ``--steps`` trains on. ``--export FILE``
writes the residuals as fp16 safetensors for the table builder
(``python -m facecodec.train.wavelet_tables --lifting-from FILE``).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from facecodec.bitstream.subbands import subbands
from facecodec.models import wavelet_transform as wt
from facecodec.models.lifting import LearnedLifting
from facecodec.models.postfilter import PostFilter
from facecodec.train.wavelet_tables import BASE_STEPS, load_faces, scaled_down
from facecodec.rdoq import MU
from facecodec.train import checkpoints
from facecodec.models.networks import state_dict
from facecodec.zoo import manifest_entry, weights_tensors

REPO = Path(__file__).resolve().parents[1]


def quantized(u: torch.Tensor, ll: torch.Tensor, offsets: tuple[float, float]) -> torch.Tensor:
    """What the codec's dead-zone quantizer and dequantizer make of ``u`` (step units;
    facecodec.models.wavelet_transform.quantize), with the gradient of the identity (straight through)."""
    rounding, recon = offsets
    magnitude = torch.floor(u.abs() + torch.where(ll, 0.5, rounding))
    value = torch.sign(u) * torch.where(ll | (magnitude == 0), magnitude, magnitude + recon)
    return u + (value - u).detach()


def frozen_postfilter(weights_id: str, qualities: int, device: torch.device) -> PostFilter:
    """The post-filter of installed weights ``weights_id``, frozen."""
    options = manifest_entry(weights_id)["model"]
    postfilter = PostFilter(qualities, options["postfilter_hidden"], options["postfilter_layers"])
    postfilter.load_state_dict(state_dict(weights_tensors(weights_id), "postfilter."))
    return postfilter.requires_grad_(False).eval().to(device)


def _inverse_softplus(v: float) -> float:
    return math.log(math.expm1(v))


class ContextRate(nn.Module):
    """Bits of noisy coefficients under a Laplacian whose scale follows each value's neighbourhood.

    The codec's tables pick a value's distribution by the magnitudes decoded around it
    (facecodec.bitstream.contexts); a Laplacian per band would instead reward shrinking every value
    alike. Here the scale of value ``u`` in band ``b`` of plane ``c`` is
    ``softplus(floor[c, b]) + softplus(slope[c, b]) * mean |u| of its 8 neighbours``, its two
    parameters trained with the transform to minimise the bits; the bits are the mass of
    ``[u - 1/2, u + 1/2]``.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.bands = [(rows, cols) for _, _, rows, cols in subbands(size, size)]
        self.floor = nn.Parameter(torch.full((3, len(self.bands)), _inverse_softplus(0.3)))
        self.slope = nn.Parameter(torch.full((3, len(self.bands)), _inverse_softplus(1.0)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        total = u.new_zeros(())
        for b, (rows, cols) in enumerate(self.bands):
            a = u[..., rows, cols].abs()                                       # N x 3 x h x w
            around = F.avg_pool2d(F.pad(a, (1, 1, 1, 1), mode="replicate"), 3, stride=1) * 9 - a
            scale = (F.softplus(self.floor[:, b]).view(1, 3, 1, 1)
                     + F.softplus(self.slope[:, b]).view(1, 3, 1, 1) * around / 8).clamp_min(0.05)
            upper = 0.5 * torch.exp(-(a + 0.5) / scale)                        # the mass past |u| + 1/2
            near = 0.5 * torch.exp(-(a - 0.5).abs() / scale)
            p = torch.where(a < 0.5, 1 - near - upper, near - upper)
            total = total - torch.log2(p.clamp_min(1e-9)).sum()
        return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=REPO.parent / "shared" / "data" / "faces" / "train")
    parser.add_argument("--images", type=int, default=2000, help="training faces (a fixed random choice)")
    parser.add_argument("--steps", type=int, default=16000, help="train until this step (a resumed run trains on)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=1000,
                        help="steps over which the residuals' learning rate rises from 0 (the rate model's does not)")
    parser.add_argument("--levels", type=int, default=1, help="the finest levels that learn a residual")
    parser.add_argument("--hidden", type=int, default=8, help="the residual CNNs' hidden channels")
    parser.add_argument("--steps-from", default="wavelet-v2", help="installed weights whose step tables to train at")
    parser.add_argument("--postfilter-from", metavar="ID", help="measure the distortion after the (frozen) post-filter "
                        "of these installed weights, so the residuals learn what it leaves")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--out", type=Path, default=REPO / "train" / "runs" / "lifting")
    parser.add_argument("--export", type=Path, metavar="FILE", help="write the checkpoint's residuals and stop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = LearnedLifting(args.levels, args.hidden).to(device)
    rate = ContextRate(args.crop).to(device)
    trained = nn.ModuleDict({"lifting": model, "rate": rate})      # what a checkpoint holds
    # The rate model has few parameters, each a bigger lever than a residual weight: it learns 50x faster.
    optimizer = torch.optim.Adam([{"params": model.parameters()},
                                  {"params": rate.parameters(), "lr": 50 * args.lr}], lr=args.lr)
    ckpt_path = args.out / "lifting.pt"
    if args.export:
        ckpt = checkpoints.load(ckpt_path, missing="train first")
        trained.load_state_dict(ckpt["model"])
        save_file({name: t.half().contiguous() for name, t in model.state_dict().items()}, str(args.export),
                  metadata={"learned_levels": str(args.levels), "hidden": str(args.hidden),
                            "steps": str(ckpt["step"]), "seconds": str(round(ckpt["elapsed_s"]))})
        print(f"wrote {args.export} (step {ckpt['step']})")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    step, elapsed_before = checkpoints.resume(ckpt_path, trained, optimizer, args.device)
    torch.manual_seed(step)
    rng = np.random.default_rng(step)        # a resumed run draws new crops, not the first ones again

    faces = scaled_down(load_faces(args.train, args.images, seed=1), 1.6, seed=1)
    tensors = weights_tensors(args.steps_from)
    steps_table = tensors["steps"].astype(np.float32)
    offsets = [(float(r), float(d)) for r, d in zip(tensors["rounding_offset"], tensors["recon_offset"])]
    ll = torch.from_numpy(wt.ll_mask(args.crop, args.crop)).to(device)
    planes = [torch.from_numpy(wt.step_planes(args.crop, args.crop, table)).to(device) for table in steps_table]
    postfilter = frozen_postfilter(args.postfilter_from, len(steps_table), device) if args.postfilter_from else None
    to_ycc = torch.from_numpy(wt.RGB_TO_YCC.astype(np.float32)).to(device)
    to_rgb = torch.from_numpy(wt.YCC_TO_RGB.astype(np.float32)).to(device)
    started, log = time.perf_counter(), []
    while step < args.steps:
        crops = []
        for _ in range(args.batch):
            face = faces[rng.integers(len(faces))]
            top, left = rng.integers(face.shape[0] - args.crop + 1), rng.integers(face.shape[1] - args.crop + 1)
            crops.append(face[top:top + args.crop, left:left + args.crop])
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().to(device)
        level = int(rng.integers(len(steps_table)))
        ycc = torch.einsum("ij,njhw->nihw", to_ycc, x)
        ycc[:, 0] -= wt.LEVEL_SHIFT
        u = model(ycc) / planes[level]
        noisy = u + torch.rand_like(u) - 0.5
        y_hat = model.inverse(quantized(u, ll, offsets[level]) * planes[level])
        y_hat[:, 0] += wt.LEVEL_SHIFT
        x_hat = torch.einsum("ij,njhw->nihw", to_rgb, y_hat)
        if postfilter is not None:     # it sees what the codec gives it: 8-bit pixels (rounded straight through)
            clipped = x_hat.clamp(0, 255)
            eight_bit = clipped + (clipped.round() - clipped).detach()
            x_hat = 255 * postfilter(eight_bit / 255, torch.full((args.batch,), level + 1.0, device=device))
        pixels = args.batch * args.crop ** 2
        distortion = ((x_hat - x) ** 2).sum() / 3 / BASE_STEPS[level] ** 2 / pixels
        bits = rate(noisy) / pixels
        loss = distortion + MU * bits
        # Until the rate model fits, its gradients would steer the residuals wrongly; they start slowly.
        optimizer.param_groups[0]["lr"] = args.lr * min(1.0, step / args.warmup)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        log.append((distortion.item(), bits.item()))
        if step % 100 == 0:
            recent = np.array(log[-100:])
            print(f"step {step}/{args.steps}: distortion {recent[:, 0].mean():.4f}, bpp {recent[:, 1].mean():.3f}, "
                  f"{elapsed_before + time.perf_counter() - started:.0f} s", flush=True)
        if step % args.save_every == 0 or step == args.steps:
            checkpoints.save(ckpt_path, trained, optimizer, step, elapsed_before + time.perf_counter() - started)


if __name__ == "__main__":
    main()
