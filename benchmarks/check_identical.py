"""Bit-identity guard for speed work: the masks of a few ``lightseg segment`` runs, as sha256 of the
decompressed label arrays (dtype, shape and bytes; not of the gzip stream), saved or compared.

    # with the code before a change
    LIGHTSEG_DATA=../shared/data PYTHONPATH=. python benchmarks/check_identical.py --save /tmp/speed_ref
    # after it: exit 1 and a list when any digest differs
    LIGHTSEG_DATA=../shared/data PYTHONPATH=. python benchmarks/check_identical.py --compare /tmp/speed_ref
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LIGHTSEG_DATA", ROOT / ".." / "shared" / "data")).resolve()
RUNS = [("mnv3-lraspp-int8", "Brats18_TCIA02_606_1"), ("mnv3-lraspp-int8", "Brats18_CBICA_ALU_1"),
        ("mnv3-lraspp-v2-int8", "Brats18_TCIA02_606_1"), ("mnv3-lraspp-v2-int8", "Brats18_CBICA_ALU_1"),
        ("pcnn-wt", "Brats18_TCIA02_606_1")]


def label_digest(path: Path) -> str:
    """sha256 of the decompressed label array (its dtype and shape included)."""
    import nibabel as nib
    import numpy as np

    data = np.asarray(nib.load(str(path)).dataobj)
    digest = hashlib.sha256(f"{data.dtype.str}{data.shape}".encode())
    digest.update(np.ascontiguousarray(data).tobytes())
    return digest.hexdigest()


def segment(model: str, case: str, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "napari_lightseg.cli", "segment", str(DATA / "brats18" / case), "--model", model,
           "--out", str(out), "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if proc.returncode:
        raise RuntimeError(f"{model} on {case}: exit {proc.returncode}: {proc.stderr[-400:]}")


def digests(keep: Path | None) -> dict[str, str]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        for model, case in RUNS:
            mask = folder / f"{model}__{case}.nii.gz"
            segment(model, case, mask)
            out[f"{model} {case}"] = label_digest(mask)
            print(f"{model} {case}: {out[f'{model} {case}'][:16]}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="folder: write the masks and digests.json there")
    group.add_argument("--compare", type=Path, help="folder with digests.json from --save")
    args = p.parse_args()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        (args.save / "digests.json").write_text(json.dumps(digests(args.save), indent=1) + "\n")
        return
    reference = json.loads((args.compare / "digests.json").read_text())
    now = digests(None)
    differ = [k for k in reference if now.get(k) != reference[k]]
    print("bit-identical: " + ("yes, all " + str(len(reference)) if not differ else "NO: " + "; ".join(differ)))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
