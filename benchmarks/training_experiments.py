"""The models-v2 training experiments as one table, from the run folders' own logs.

Each run folder (``src_models.train --out``) holds ``config.json``, ``log.jsonl`` (validation Dice on the
fixed 4-case split, preprocessed grid, no post-processing, no flips, every ``--val-every`` steps) and
``commands.txt``. This collects the last entry of each run into ``RESULTS_training.json`` and prints
the Markdown table of ``RESULTS_training.md``; ``--baseline`` names the run the others are compared with.
Rows already in the JSON are kept (run folders are not committed), and a run given again replaces its row.

    python benchmarks/training_experiments.py runs/mnv3-e0 runs/mnv3-e1 ... --baseline mnv3-e0
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGIONS = ("WT", "TC", "ET")


def collect(run: Path) -> dict:
    config = json.loads((run / "config.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    last = log[-1]
    commands = (run / "commands.txt").read_text().splitlines() if (run / "commands.txt").exists() else []
    dice = {f"dice_{r}": round(last[f"dice_{r}"], 4) for r in REGIONS}
    return {"run": run.name, "arch": config["arch"], "head": config.get("head", "classes"),
            "context": config.get("context", 0), "aug": config.get("aug", "basic"), "steps": last["step"],
            "minutes": round(last["minutes"], 1), **dice, "mean_dice": round(sum(dice.values()) / 3, 4),
            "curve": [{k: round(v, 4) if isinstance(v, float) else v for k, v in e.items()} for e in log],
            "commands": commands}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--baseline", required=True)
    p.add_argument("--out", type=Path, default=HERE / "RESULTS_training.json")
    args = p.parse_args()
    kept = json.loads(args.out.read_text())["runs"] if args.out.exists() else []
    fresh = [collect(run) for run in args.runs]
    rows = [r for r in kept if r["run"] not in {f["run"] for f in fresh}] + fresh
    base = next(r for r in rows if r["run"] == args.baseline)
    args.out.write_text(json.dumps({"baseline": args.baseline, "runs": rows}, indent=1) + "\n")
    print("| run | arch | head | 2.5D context | augmentation | steps | minutes | WT | TC | ET | mean | vs baseline |")
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        delta = r["mean_dice"] - base["mean_dice"] if r["arch"] == base["arch"] else float("nan")
        print(f"| {r['run']} | {r['arch']} | {r['head']} | {r['context']} | {r['aug']} | {r['steps']} | {r['minutes']} | "
              f"{r['dice_WT']:.3f} | {r['dice_TC']:.3f} | {r['dice_ET']:.3f} | {r['mean_dice']:.3f} | {delta:+.3f} |")


if __name__ == "__main__":
    main()
