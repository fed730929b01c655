"""The GPU runtime's path, run on a CPU: chapters 03 and 04 in ``full`` mode with an official-format
checkpoint, as a reader would run them on Colab, but small enough for 2 cores.

Makes a synthetic OCTA-500 tree (3M, official layout) with 2 subjects in each part of the standard
split, and a vit_b checkpoint in the official file format with random weights (no official file can
be downloaded here), then executes both notebooks with papermill (``SAMOCTA_MODE=full``,
``SAMOCTA_SUBJECTS=2``, 1 epoch, batch 1; chapter 04 trains FAZ, reusing 03's run, and Artery in
global and local mode). Prints each chapter's wall time and checks that the executed notebooks name
the checkpoint and the device and show per-epoch progress.

    python benchmarks/bench_full_mode_cpu.py [--out FOLDER] [--model vit_b]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_tree(root: Path, per_part: int = 2) -> Path:
    """A synthetic 3M tree whose standard split has ``per_part`` subjects in train, val and test."""
    from samocta.data import standard_split
    from samocta.synth import write_octa500

    ids = write_octa500(root, "3M", n=40, seed=0, progress=False)
    split = standard_split("3M", ids)
    keep = set(split.train[:per_part] + split.val[:per_part] + split.test[:per_part])
    for path in root.rglob("*.bmp"):
        if int(path.stem) not in keep:
            path.unlink()
    return root


def make_checkpoint(path: Path, model: str) -> Path:
    import torch
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    torch.save(sam_model_registry[model]().state_dict(), path)  # the official files' format: a plain state dict
    return path


def main() -> int:
    import papermill as pm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="keep the executed notebooks here (default: a temporary folder)")
    parser.add_argument("--model", default="vit_b", choices=("vit_b", "vit_l", "vit_h"))
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="samocta-full-"))
    work.mkdir(parents=True, exist_ok=True)
    data = make_tree(work / "octa500")
    checkpoint = make_checkpoint(work / f"sam_{args.model}_random.pth", args.model)
    env = {"SAMOCTA_MODE": "full", "SAMOCTA_DATA": str(data), "SAMOCTA_CHECKPOINT": str(checkpoint),
           "SAMOCTA_MODEL": args.model, "SAMOCTA_EPOCHS": "1", "SAMOCTA_SUBJECTS": "2", "SAMOCTA_BATCH": "1",
           "SAMOCTA_TASKS": "FAZ,Artery", "SAMOCTA_WORKDIR": str(work / "samocta-work"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    os.environ.update(env)
    failures = []
    for name in ("03_finetune", "04_evaluate"):
        out = work / f"{name}.executed.ipynb"
        t0 = time.perf_counter()
        pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), cwd=str(work), kernel_name="python3",
                            progress_bar=False, execution_timeout=1200)
        seconds = time.perf_counter() - t0
        text = out.read_text()
        shown = {"checkpoint": str(checkpoint) in text, "device": "device cpu" in text, "epoch lines": "epoch 1/1:" in text,
                 "run plan": "training " in text and "validation subjects" in text}
        print(f"{name}: {seconds:.0f} s in full mode ({args.model}, random weights, 2 subjects per part, 1 epoch); "
              + ", ".join(f"{k} {'shown' if v else 'MISSING'}" for k, v in shown.items()), flush=True)
        failures += [f"{name}: {k}" for k, v in shown.items() if not v]
    print(f"executed notebooks in {work}")
    if not args.out:
        shutil.rmtree(work / "samocta-work", ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
