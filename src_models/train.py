"""Train a 2D segmenter on brats18 (fixed split), with checkpoints, --resume and a per-epoch log.

Example (the commands behind the shipped models are in src_models/README.md):
    python -m src_models.train --arch dsc-unet --steps 3000 --out runs/dsc-unet
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from napari_lightseg import inference
from napari_lightseg.io import SEQUENCES
from napari_lightseg.metrics import region_scores

from .archs import build, count_params
from .data import SliceSampler, brats18_cases, load_case
from .losses import LOSSES


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    """What trained the run, for the card: the GPU's name, or the CPU model and its usable cores."""
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    import os
    import platform

    name = platform.processor() or "CPU"
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        name = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    return f"CPU {name}, {len(os.sched_getaffinity(0))} cores"


@torch.no_grad()
def predict_volume(model: torch.nn.Module, image: np.ndarray, batch: int = 16, head: str = "classes", context: int = 0,
                   flips: tuple[str, ...] = ()) -> np.ndarray:
    """Labels (z, y, x) of a preprocessed (4, z, y, x) volume through the plugin's own slice inference."""
    device = next(model.parameters()).device
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(np.asarray(x, dtype=np.float32)).to(device)).cpu().numpy()

    return inference.predict_volume(run, image, head=head, context=context, flips=flips, batch=batch)


def validate(model: torch.nn.Module, cases: list[tuple[np.ndarray, np.ndarray]], head: str = "classes",
             context: int = 0) -> dict[str, float]:
    """Mean Dice per region over the validation cases (preprocessed grid, 1 mm voxels)."""
    scores = [region_scores(predict_volume(model, img, head=head, context=context), lab, with_hd95=False) for img, lab in cases]
    return {f"dice_{r}": float(np.mean([s[f"dice_{r}"] for s in scores])) for r in ("WT", "TC", "ET")}


def lr_at(progress: float, step: int, base: float, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay over ``progress`` (0..1 of the run's steps or time budget)."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, progress)))


def train(
    arch: str,
    train_cases: list[tuple[np.ndarray, np.ndarray]],
    val_cases: list[tuple[np.ndarray, np.ndarray]],
    out: Path,
    *,
    norm: str = "bn",
    steps: int = 3000,
    batch: int = 16,
    patch: int = 128,
    lr: float = 2e-3,
    val_every: int = 250,
    seed: int = 0,
    resume: bool = False,
    max_minutes: float | None = None,
    threads: int | None = None,
    head: str = "classes",
    context: int = 0,
    aug: str = "basic",
) -> dict:
    """Train; writes ``last.pt`` (model + optimizer + step) and appends to ``log.jsonl`` in ``out``."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    device = pick_device()
    out.mkdir(parents=True, exist_ok=True)
    out_channels = 3 if head == "regions" else 4
    model = build(arch, norm, len(SEQUENCES) * (2 * context + 1), out_channels).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sampler = SliceSampler(train_cases, patch=patch, seed=seed, context=context, strong=aug == "strong")
    loss_fn = LOSSES[head]
    step, ckpt_path = 0, out / "last.pt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step = ckpt["step"]
        sampler.rng = np.random.default_rng([seed, step])
        torch.manual_seed(seed + step)
    config = dict(arch=arch, norm=norm, steps=steps, batch=batch, patch=patch, lr=lr, seed=seed, val_every=val_every,
                  max_minutes=max_minutes, params=count_params(model), head=head, context=context, aug=aug,
                  train_cases=len(train_cases), device=describe_device(device), threads=torch.get_num_threads())
    (out / "config.json").write_text(json.dumps(config, indent=2))
    started, running, last = time.time(), [], {}

    def progress() -> float:
        """Fraction of the run done, by steps or by the time budget (so a time-capped run still anneals)."""
        by_time = (time.time() - started) / (max_minutes * 60) if max_minutes else 0.0
        return max(step / steps, by_time)

    while step < steps:
        model.train()
        x, y = sampler.batch(batch)
        for group in opt.param_groups:
            group["lr"] = lr_at(progress(), step, lr)
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        step += 1
        out_of_time = progress() >= 1.0
        if step % val_every == 0 or step == steps or out_of_time:
            last = {"step": step, "loss": float(np.mean(running)), "lr": lr_at(progress(), step, lr),
                    "minutes": (time.time() - started) / 60, **(validate(model, val_cases, head, context) if val_cases else {})}
            running = []
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(last) + "\n")
            print(json.dumps(last), flush=True)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "config": config}, ckpt_path)
        if out_of_time:
            break
    return last


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True)
    p.add_argument("--norm", default="bn", choices=["bn", "gn"])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--head", default="classes", choices=["classes", "regions"])
    p.add_argument("--context", type=int, default=0, help="neighbouring slices on each side as channels (2.5D)")
    p.add_argument("--aug", default="basic", choices=["basic", "strong"])
    p.add_argument("--all-cases", action="store_true", help="final fit: train on all labelled cases (no validation)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    train_dirs, val_dirs = brats18_cases()
    if args.all_cases:
        train_dirs, val_dirs = sorted(train_dirs + val_dirs), []
    t = time.time()
    train_cases = [load_case(d) for d in train_dirs]
    val_cases = [load_case(d) for d in val_dirs]
    print(f"loaded {len(train_cases)} training / {len(val_cases)} validation cases in {time.time() - t:.0f} s", flush=True)
    train(args.arch, train_cases, val_cases, args.out, norm=args.norm, steps=args.steps, batch=args.batch,
          patch=args.patch, lr=args.lr, val_every=args.val_every, seed=args.seed, resume=args.resume,
          max_minutes=args.max_minutes, threads=args.threads, head=args.head, context=args.context, aug=args.aug)


if __name__ == "__main__":
    main()
