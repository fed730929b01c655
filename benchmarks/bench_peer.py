"""A peer measured beside SAM-OCTA: a U-Net from MONAI trained on the same split, on the same machine, for the same
wall-clock minutes as the default recipe took, both scored once on the real test subjects.

Run: .venv/bin/python benchmarks/bench_peer.py [DATA] [--run RUN] [--no-append]

DATA is the folder ``shared/real/octa500-3m-rv.sh`` lays out (default: $SAMOCTA_REAL, else
~/.cache/samocta-real/octa500-3m-rv; without it the benchmark says so and stops). Without ``--run``,
the default recipe is trained first (``python -m samocta train --data DATA --task RV --out RUN``, into
runs/peer-defaults beside DATA), in this process's run, and its training minutes are the U-Net's budget;
with ``--run``, a finished run of this machine is taken and its minutes read from its ``metrics.csv``
(a run that departs from the default recipe is named so in the table). The U-Net is MONAI's ``BasicUNet`` (2-D, one channel in and out, its default
widths), trained with MONAI's Dice + cross-entropy loss, Adam at 1e-3, batches of 4 with random flips
and quarter turns, on the ILM_OPL projection at the scans' own 304 x 304 px; after each epoch it is
validated (Dice on the 10 validation subjects) and the best epoch is kept. Both models are then
scored once on the 50 test subjects by the package's own metrics (``samocta.metrics``): Dice, clDice,
HD95 in µm and the mean vessel width's bias against the labels (``samocta.measure``), SAM-OCTA
prompt-free as ``evaluate`` scores it. The table, and the Dice ratio SAM-OCTA / U-Net, are printed and,
unless --no-append, appended to benchmarks/RESULTS.md with the machine and the commit.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import commit, fail, machine, publish, real_fold  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("SAMOCTA_REAL") or Path.home() / ".cache" / "samocta-real" / "octa500-3m-rv")
SEED = 0


def train_unet(train, val, minutes: float, seed: int = SEED):
    """MONAI's BasicUNet trained for ``minutes`` of wall clock; the best epoch by validation Dice, its epochs and history.

    Args:
        train, val: lists of (image float32 (H, W) in [0, 1], label bool (H, W)).
    """
    import numpy as np
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet

    from samocta.metrics import dice

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=1)
    loss_fn = DiceCELoss(sigmoid=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    images = np.stack([x for x, _ in train])[:, None]
    labels = np.stack([y for _, y in train])[:, None].astype(np.float32)
    best, best_state, history, epoch = -1.0, None, [], 0
    deadline = time.perf_counter() + minutes * 60
    while time.perf_counter() < deadline:
        net.train()
        order = rng.permutation(len(images))
        for start in range(0, len(order), 4):
            idx = order[start:start + 4]
            x, y = images[idx].copy(), labels[idx].copy()
            if rng.random() < 0.5:
                x, y = x[..., ::-1], y[..., ::-1]
            turns = int(rng.integers(4))
            x, y = np.rot90(x, turns, axes=(2, 3)), np.rot90(y, turns, axes=(2, 3))
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(torch.from_numpy(x.copy())), torch.from_numpy(y.copy()))
            loss.backward()
            opt.step()
        epoch += 1
        masks = predict_unet(net, [x for x, _ in val])
        score = float(np.mean([dice(m, y) for m, (_, y) in zip(masks, val)]))
        history.append(score)
        if score > best:
            best, best_state = score, {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return net, epoch, history


def predict_unet(net, images, threshold: float = 0.5):
    import numpy as np
    import torch

    net.eval()
    with torch.inference_mode():
        logits = [net(torch.from_numpy(x[None, None].astype(np.float32)))[0, 0] for x in images]
    return [(torch.sigmoid(z) > threshold).numpy() for z in logits]


def scores(masks, labels, pixel_um: float, fov_mm: float) -> dict[str, float]:
    """Mean Dice, clDice, HD95 (µm) and mean vessel width bias (µm, mask minus label) over subjects."""
    import numpy as np

    from samocta.measure import measure
    from samocta.metrics import all_metrics

    rows = [all_metrics(m, y) for m, y in zip(masks, labels)]
    widths = [measure(m, "RV", fov_mm)["mean_width_um"] - measure(y, "RV", fov_mm)["mean_width_um"] for m, y in zip(masks, labels)]
    return {"dice": float(np.mean([r["dice"] for r in rows])), "cldice": float(np.mean([r["cldice"] for r in rows])),
            "hd95_um": float(np.nanmean([r["hd95"] for r in rows])) * pixel_um, "width_bias_um": float(np.nanmean(widths))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help="the laid-out real copy (default: %(default)s)")
    parser.add_argument("--run", default=None, help="a finished run on DATA (its training minutes are the budget; a run that "
                        "departs from the default recipe is named so in the table)")
    parser.add_argument("--no-append", action="store_true", help="print the table only")
    args = parser.parse_args()
    data = Path(args.data).expanduser()
    if not (data / "dataset.json").is_file():
        print(f"bench_peer: no real OCTA copy at {data}; lay it out with shared/real/octa500-3m-rv.sh (skipped)")
        return
    import pandas as pd
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    run = Path(args.run).expanduser() if args.run else data.parent / "runs" / "peer-defaults"
    if args.run is None:  # the default recipe, in this process's run: its minutes are the U-Net's
        command = [sys.executable, "-m", "samocta", "train", "--data", str(data), "--task", "RV", "--out", str(run)]
        if (run / "standard" / "config.json").exists():
            command.append("--resume")
        if subprocess.run(command).returncode:
            fail("bench_peer", "the default recipe's training failed (its message is above)")
    fold, config, split = real_fold("bench_peer", run, data)
    if config.task != "RV":
        fail("bench_peer", f"{run} segments {config.task}; the real copy's labels are large vessels (RV)")
    from samocta.core import runs
    from samocta.data import open_dataset
    from samocta.evaluate import evaluate_run

    history = pd.read_csv(fold / runs.HISTORY)
    minutes = float(history["seconds"].sum()) / 60
    index = open_dataset(data, None, "ILM_OPL", None, label_task="RV")

    def pairs(ids):
        out = []
        for sid in ids:
            sample = index.load(sid)
            out.append((sample.image[..., 0].astype("float32") / 255, sample.labels["RV"]))
        return out

    train, val, test = pairs(split.train), pairs(split.val), pairs(split.test)
    t0 = time.perf_counter()
    net, epochs, unet_history = train_unet(train, val, minutes)
    unet_minutes = (time.perf_counter() - t0) / 60
    pixel_um = index.fov_mm * 1000 / test[0][1].shape[1]
    labels = [y for _, y in test]
    unet = scores(predict_unet(net, [x for x, _ in test]), labels, pixel_um, index.fov_mm)

    sam_rows = evaluate_run(fold, ["none"], part="test", save_masks=True, progress=False)
    from samocta.data import read_grey

    masks = [read_grey(runs.masks(fold, "test", None) / "none" / f"{sid}.png") > 0 for sid in split.test]
    sam = scores(masks, labels, pixel_um, index.fov_mm)
    assert abs(sam["dice"] - float(sam_rows["dice"].mean())) < 1e-9  # the masks evaluate scored

    def row(name, s, mins, detail):
        return (f"| {name} | {mins:.1f} | {detail} | {s['dice']:.3f} | {s['cldice']:.3f} | {s['hd95_um']:.1f} | "
                f"{s['width_bias_um']:+.1f} |")

    setup = sam_rows["setup"].iloc[0]
    from samocta.config import recipe_named

    recipe = recipe_named(config)  # a run that departs from the default says how, in both lines that name it
    text = "\n".join([
        "",
        f"### A peer at equal minutes: MONAI's U-Net beside SAM-OCTA ({datetime.date.today().isoformat()})",
        "",
        f"- Data: the public OCTA-500 3M copy (ILM_OPL, large vessels), train / val / test {len(train)} / {len(val)} / "
        f"{len(test)}; scored once on the test subjects, prompt-free",
        f"- Machine: {machine()}; commit {commit()}; `benchmarks/bench_peer.py DATA" + (" --run RUN`" if args.run else "`"),
        f"- SAM-OCTA: {recipe} ({setup}), run `{run.name}`, adapter_best; U-Net: MONAI BasicUNet, Dice + CE, Adam "
        f"1e-3, batch 4, flips and quarter turns, best of {epochs} epochs by validation Dice "
        f"({max(unet_history):.3f})",
        "",
        "| model | training minutes | trained | Dice | clDice | HD95 µm | mean width bias µm |",
        "|---|---|---|---|---|---|---|",
        row(f"SAM-OCTA (tiny SAM, {recipe})", sam, minutes, f"{len(history)} epochs"),
        row("U-Net (MONAI BasicUNet)", unet, unet_minutes, f"{epochs} epochs"),
        "",
        f"Dice ratio SAM-OCTA / U-Net at equal minutes: {sam['dice'] / unet['dice']:.3f}.",
    ]) + "\n"
    publish(text, not args.no_append)


if __name__ == "__main__":
    main()
