"""Scores that mean what they say: the mask rule, one scorer for validation and evaluation,
Table 2 per trained mode, k-fold reporting, adapters that fit, checkpoints said out loud, precision."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from inputs import training_inputs
from scipy import ndimage

from samocta.core.options import ConfigError
from samocta.data import OCTA500, read_grey
from samocta.evaluate import evaluate, evaluate_run, paper_tables, predict_modes
from samocta.model import AdapterError, CheckpointError, LoRASam, MaskOutput, build_model, build_sam
from samocta.model.lora import adapter_digest
from samocta.train import TrainConfig, read_history, train_fold


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Ten small synthetic 3M subjects and random tiny-SAM weights in the official format (jittered,
    so that the decoder's three masks differ)."""
    return training_inputs(tmp_path_factory.mktemp("scoring"), n=10, seed=5, jitter=True)


def _config(setup: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(setup / "data"), task="FAZ", checkpoint=str(setup / "tiny.pth"), epochs=2, batch_size=3,
                out=str(out), device="cpu", seed=1)
    return TrainConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- the mask rule


def test_the_paper_mask_rule_is_the_default_and_travels_with_the_run(setup, tmp_path):
    assert TrainConfig().mask_rule == "most_confident"
    assert TrainConfig.preset("reference_code").mask_rule == "single"
    with pytest.raises(ConfigError, match="mask_rule"):
        TrainConfig(mask_rule="best")
    # a config written before the rule had a name keeps the rule it trained with
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"task": "RV", "multimask": False}))
    assert TrainConfig.from_json(legacy).mask_rule == "single"

    config = _config(setup, tmp_path / "run", epochs=1, mask_rule="single")
    result = train_fold(config, progress=False)
    assert json.loads((result.run_dir / "config.json").read_text())["mask_rule"] == "single"
    meta = LoRASam.read_adapter(result.run_dir / "adapter_best.safetensors")[1]
    assert meta["mask_rule"] == "single" and meta["task"] == "FAZ"
    model = LoRASam.from_adapter(result.run_dir / "adapter_best.safetensors", setup / "tiny.pth")
    assert model.mask_rule == "single" and model.task == "FAZ"


def test_every_consumer_decodes_with_the_model_rule(setup):
    from samocta.prompts import PromptSpec
    from samocta.reader import click_prompts

    index = OCTA500(setup / "data", "3M")
    differs = 0
    for rule in ("most_confident", "single"):
        model = build_model(_config(setup, Path("unused"), mask_rule=rule), torch.device("cpu"))
        for sid in index.ids[:4]:
            sample = index.load(sid)
            (_, prompt, pred), = predict_modes(model, sample, "FAZ", {"global": PromptSpec.paper("FAZ", "global")})
            with torch.no_grad():
                out = model.decode(model.embed(sample.image[None]), [prompt.coords], [prompt.labels], mask_rule=rule)
                other = model.decode(model.embed(sample.image[None]), [prompt.coords], [prompt.labels],
                                     mask_rule="single" if rule == "most_confident" else "most_confident")
            assert np.array_equal(pred, out.masks()[0])
            differs += not np.array_equal(pred, other.masks()[0])
            clicker = click_prompts(sample.image, model, points=[(*xy, int(lab)) for xy, lab in zip(prompt.coords, prompt.labels)])
            assert np.array_equal(clicker.mask, pred)
    assert differs > 0, "the two rules gave the same masks everywhere: the test would not see a wrong rule"


@pytest.mark.slow
def test_train_and_evaluate_take_the_mask_rule_on_the_command_line(setup, tmp_path):
    cmd = [sys.executable, "-m", "samocta", "train", "--preset", "paper", "--data", str(setup / "data"), "--checkpoint", str(setup / "tiny.pth"),
           "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--quiet", "--out", str(tmp_path / "cli"),
           "--preset", "reference_code"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((tmp_path / "cli" / "standard" / "config.json").read_text())
    assert (config["mask_rule"], config["loss_preset"], config["augment"]) == ("single", "reference_code", "reference_code")
    done = subprocess.run([*cmd[:-2], "--mask-rule", "most_confident", "--out", str(tmp_path / "cli2")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "cli2" / "standard" / "config.json").read_text())["mask_rule"] == "most_confident"


# ----------------------------------------------------------------------------- one scorer


@pytest.mark.parametrize("mode, n_pos", [("global", None), ("local", 3)])
def test_validation_dice_equals_evaluate_run_on_the_validation_part(setup, tmp_path, mode, n_pos):
    config = _config(setup, tmp_path / mode, prompt_mode=mode, n_pos=n_pos, task="RV" if mode == "local" else "FAZ")
    result = train_fold(config, progress=False)
    history = read_history(result.run_dir)
    last = evaluate_run(result.run_dir, [mode], part="val", adapter="last", progress=False)
    assert last["dice"].mean() == pytest.approx(history[-1]["val_dice"], abs=1e-12)
    assert last["cldice"].mean() == pytest.approx(history[-1]["val_cldice"], abs=1e-12)
    if n_pos is not None:  # the run's own recipe, not the paper's counts
        assert (last["n_points"] == n_pos + 2).all()
    best = evaluate_run(result.run_dir, [mode], part="val", adapter="best", progress=False)
    assert best["dice"].mean() == pytest.approx(result.best_val_dice, abs=1e-12)
    assert set(best["selection"]) == {"best epoch, chosen on the same validation subjects it is scored on"}
    assert set(evaluate_run(result.run_dir, progress=False)["mode"]) == {"none", mode}  # default: without and trained mode


class ComponentOracle:
    """A stand-in model that returns exactly the 8-connected label components under its positive points."""

    mask_rule = "single"

    def __init__(self, index: OCTA500, task: str) -> None:
        self.labels = {index.load(i).image.tobytes(): index.load(i).labels[task] for i in index.ids}

    def eval(self):
        return self

    def embed(self, images):
        return np.asarray(images)

    def decode(self, embedding, coords, labels):
        label = self.labels[embedding[0].tobytes()]
        components, _ = ndimage.label(label, np.ones((3, 3), bool))
        under = {components[int(y), int(x)] for (x, y), lab in zip(coords[0], labels[0]) if lab == 1} - {0}
        logits = torch.where(torch.as_tensor(np.isin(components, list(under))), 10.0, -10.0)[None, None]
        return MaskOutput(logits, logits, torch.ones(1, 1), torch.zeros(1, dtype=torch.long))


def test_evaluate_scores_the_prompt_target_an_oracle_gets_exactly(setup, tmp_path):
    index = OCTA500(setup / "data", "3M")
    results = evaluate(ComponentOracle(index, "Artery"), index, index.ids, "Artery", ("global", "local"),
                       save_dir=tmp_path / "masks", progress=False)
    assert (results["dice"] == 1.0).all()  # against what each prompt asks for
    whole = []
    for sid in index.ids:
        label = index.load(sid).labels["Artery"]
        local = read_grey(tmp_path / "masks" / "local" / f"{sid}.png") > 0
        whole.append(2 * (local & label).sum() / (local.sum() + label.sum()))
        assert np.array_equal(read_grey(tmp_path / "masks" / "global" / f"{sid}.png") > 0, label)
    assert max(whole) < 1.0  # one vessel is not the whole label


# ----------------------------------------------------------------------------- tables and reports


def _rows(trained: str, task: str, fov: str, mode: str, dice: float, n: int = 3, setup: str = "tiny, LoRA r=4", **kw) -> list[dict]:
    return [{"id": i, "fold": 0, "task": task, "fov": fov, "mode": mode, "trained_mode": trained, "dice": dice,
             "jaccard": dice / 2, "data_source": "synthetic", "model_type": "tiny", "setup": setup,
             "selection": "best epoch on the validation subjects", **kw} for i in range(n)]


def test_table2_takes_each_row_from_the_runs_trained_in_its_mode():
    rows = (_rows("global", "Artery", "3M", "none", 0.5) + _rows("global", "Artery", "3M", "global", 0.8)
            + _rows("global", "Artery", "3M", "local", 0.99)  # a global model scored in local mode
            + _rows("local", "Artery", "3M", "none", 0.3) + _rows("local", "Artery", "3M", "local", 0.6)
            + _rows("local", "Artery", "3M", "global", 0.11)  # a local model scored in global mode
            + _rows("global", "FAZ", "3M", "global", 0.9) + _rows("local", "FAZ", "3M", "global", 0.1))
    table1, table2 = paper_tables(pd.DataFrame(rows))
    assert table2.loc[("global", "Artery", "dice"), "measured 3M ×"] == pytest.approx(0.5)
    assert table2.loc[("global", "Artery", "dice"), "measured 3M ✓"] == pytest.approx(0.8)
    assert table2.loc[("local", "Artery", "dice"), "measured 3M ×"] == pytest.approx(0.3)
    assert table2.loc[("local", "Artery", "dice"), "measured 3M ✓"] == pytest.approx(0.6)
    assert np.isnan(table2.loc[("local", "Vein", "dice"), "measured 3M ✓"])
    assert table1.loc["this run (synthetic, tiny, channels OPL_BM, ILM_OPL, FULL)", ("FAZ", "3M", "dice")] == pytest.approx(0.9)
    assert "trained in that mode" in table2.attrs["measured_on"]
    with pytest.raises(ValueError, match="setup"):  # two set-ups in one cell are never averaged
        paper_tables(pd.DataFrame(rows + _rows("global", "Artery", "3M", "global", 0.4, setup="tiny, LoRA r=4 + decoder")))
    with pytest.raises(ValueError, match="model_type"):
        paper_tables(pd.DataFrame(rows + [{**rows[0], "model_type": "vit_b"}]))


@pytest.mark.slow
def test_kfold_evaluation_reports_folds_and_says_how_the_epoch_was_chosen(setup, tmp_path):
    for fold in (0, 1):
        train_fold(_config(setup, tmp_path / "kf", split="kfold", k=5, fold=fold, epochs=1), progress=False)
    cmd = [sys.executable, "-m", "samocta", "evaluate", "--run", str(tmp_path / "kf"), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "n_folds" in out and "n_subjects" in out and "empty_predictions" in out
    assert "chosen on the validation fold it is scored on" in out
    summary = pd.read_csv(tmp_path / "kf" / "summary-val.csv", dtype={"fold": str}).set_index(["task", "fov", "trained_mode", "mode", "fold"])
    every = summary.loc[("FAZ", "3M", "global", "global", "all")]
    assert every["n_folds"] == 2 and every["n_subjects"] == 4  # 10 subjects, k = 5: 2 per validation fold
    assert summary.loc[("FAZ", "3M", "global", "global", "0"), "n_subjects"] == 2
    last = subprocess.run([*cmd, "--select", "last"], capture_output=True, text=True, timeout=600)
    assert last.returncode == 0 and "last epoch" in last.stdout and "chosen on the validation fold" not in last.stdout
    results = pd.concat([evaluate_run(tmp_path / "kf" / f"fold{f}", progress=False) for f in (0, 1)])
    assert "optimistic" in paper_tables(results)[1].attrs["note"]


# ----------------------------------------------------------------------------- loading what was trained


def test_an_adapter_loads_only_into_the_model_it_was_trained_with(setup, tmp_path):
    from samocta.core.files import save_safetensors

    ckpt = setup / "tiny.pth"
    model = LoRASam(build_sam("tiny", ckpt), rank=4, alpha=8, mask_rule="most_confident", task="FAZ")
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.normal_(0, 0.05)
    path = tmp_path / "a.safetensors"
    model.save_adapter(path)
    LoRASam(build_sam("tiny", ckpt), rank=4, alpha=8, task="FAZ").load_adapter(path)
    cases = {
        "alpha 8.0": dict(alpha=4, task="FAZ"),
        "dropout 0.0": dict(alpha=8, dropout=0.1, task="FAZ"),
        "mask_rule 'most_confident'": dict(alpha=8, mask_rule="single", task="FAZ"),
        "task 'FAZ'": dict(alpha=8, task="RV"),
    }
    for message, kw in cases.items():
        with pytest.raises(AdapterError, match=message):
            LoRASam(build_sam("tiny", ckpt), rank=4, **kw).load_adapter(path)
    merged = LoRASam(build_sam("tiny", ckpt), rank=4, alpha=8, task="FAZ")
    merged.merge()
    with pytest.raises(AdapterError, match="merged"):
        merged.load_adapter(path)
    # an adapter from before the rule and task were recorded: refused unless the run's config says them
    tensors, meta = LoRASam.read_adapter(path)
    old = tmp_path / "old.safetensors"
    legacy = {k: v for k, v in meta.items() if k not in ("mask_rule", "task", "digest")}
    save_safetensors(tensors, old, {**legacy, "digest": adapter_digest(tensors, legacy)})
    fresh = LoRASam(build_sam("tiny", ckpt), rank=4, alpha=8, task="FAZ")
    with pytest.raises(AdapterError, match=r"lacks \['mask_rule', 'task'\]"):
        fresh.load_adapter(old)
    fresh.load_adapter(old, defaults={"mask_rule": "most_confident", "task": "FAZ"})
    rebuilt = LoRASam.from_adapter(path, ckpt)
    assert (rebuilt.alpha, rebuilt.mask_rule, rebuilt.task) == (8.0, "most_confident", "FAZ")


def test_an_adapter_is_untrusted_input_checked_before_a_model_is_built(setup, tmp_path):
    from samocta.core.files import save_safetensors

    ckpt = setup / "tiny.pth"
    path = tmp_path / "a.safetensors"
    LoRASam(build_sam("tiny", ckpt), rank=4, task="RV").save_adapter(path)
    tensors, meta = LoRASam.read_adapter(path)
    # edited after training, digest kept: another alpha, or the RV weights relabelled FAZ
    for key, value in (("alpha", "400.0"), ("task", "FAZ")):
        save_safetensors(tensors, tmp_path / "edited.safetensors", {**meta, key: value})
        with pytest.raises(AdapterError, match="changed after training"):
            LoRASam.from_adapter(tmp_path / "edited.safetensors", ckpt)
    # written without a digest (by hand or by another tool): refused, whatever it says, with the way to re-save it
    bare = {k: v for k, v in meta.items() if k != "digest"}
    save_safetensors(tensors, tmp_path / "bare.safetensors", bare)
    with pytest.raises(AdapterError, match="carries no digest.*python -m samocta resave-adapter RUN"):
        LoRASam.from_adapter(tmp_path / "bare.safetensors", ckpt)
    with pytest.raises(AdapterError, match="carries no digest"):
        LoRASam(build_sam("tiny", ckpt), rank=4, task="RV").load_adapter(tmp_path / "bare.safetensors")
    # a digest is an unkeyed SHA-256 anyone can compute: with one recomputed, each field is still checked by the
    # rules a training writes it with
    for key, value, said in (("rank", "0", "rank"), ("rank", "100000", "rank"), ("dropout", "2", "dropout"),
                             ("task", "Retina", "task"), ("mask_rule", "bogus", "mask_rule"), ("image_size", "0x0", "image_size"),
                             ("img_size", "100", "input_size"), ("fov_mm", "nan", "fov_mm"), ("alpha", "-1", "alpha"),
                             ("label_stats", '{"area_pct":[3,2,1]}', "label_stats")):
        edited = {**bare, key: value}
        save_safetensors(tensors, tmp_path / "bad.safetensors", {**edited, "digest": adapter_digest(tensors, edited)})
        with pytest.raises(AdapterError, match=said):
            LoRASam.from_adapter(tmp_path / "bad.safetensors", ckpt)


def test_an_adapter_without_a_digest_is_written_again_from_its_run(setup, tmp_path):
    from samocta.core.files import save_safetensors

    result = train_fold(_config(setup, tmp_path / "run", epochs=1), progress=False)
    best, last = (result.run_dir / f"adapter_{w}.safetensors" for w in ("best", "last"))
    original = best.read_bytes()
    tensors, meta = LoRASam.read_adapter(best)
    assert {"image_size", "label_stats", "fov"} <= set(meta)  # what prediction brings scans to and holds masks against
    # stripped of its digest and edited: the run, not the file, says what it is
    stripped = {k: v for k, v in meta.items() if k != "digest"}
    save_safetensors(tensors, best, {**stripped, "alpha": "64.0", "fov_mm": "6.0"})
    with pytest.raises(AdapterError, match="carries no digest"):
        LoRASam.from_adapter(best, setup / "tiny.pth")
    done = subprocess.run([sys.executable, "-m", "samocta", "resave-adapter", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"wrote {best} again" in done.stdout and f"wrote {last} again" in done.stdout
    assert best.read_bytes() == original  # the same bytes training wrote: the edits are gone
    model = LoRASam.from_adapter(best, setup / "tiny.pth")
    assert model.alpha == 4.0 and model.trained_with["fov_mm"] == "3.0"
    # weights that do not fit the model the run describes are refused, the file left as it was
    save_safetensors({k: v[..., :1].contiguous() for k, v in tensors.items()}, best, stripped)
    kept = best.read_bytes()
    done = subprocess.run([sys.executable, "-m", "samocta", "resave-adapter", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "shape" in done.stderr
    assert "Traceback" not in done.stderr and best.read_bytes() == kept


def test_official_types_need_a_checkpoint_said_out_loud(setup, tmp_path, monkeypatch):
    import samocta.model.build as build
    import samocta.model.download as download
    from samocta.model.build import resolve_checkpoint

    with pytest.raises(CheckpointError, match="--checkpoint: a path to the official sam_vit_b_01ec64.pth.*'download'.*'random'"):
        TrainConfig(model="vit_b")
    done = subprocess.run([sys.executable, "-m", "samocta", "train", "--preset", "paper", "--data", str(setup / "data"), "--model", "vit_h",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.startswith("error: --model vit_h needs --checkpoint")
    assert "Traceback" not in done.stderr and not (tmp_path / "x").exists()
    assert resolve_checkpoint("vit_b", "random") == (None, None)
    assert TrainConfig(model="vit_b", checkpoint="random").checkpoint == "random"
    legacy = tmp_path / "legacy.json"  # an old vit_b run without a checkpoint trained random weights
    legacy.write_text(json.dumps({"model": "vit_b", "checkpoint": None}))
    assert TrainConfig.from_json(legacy).checkpoint == "random"
    # 'download' records the official SHA-256 as the adapter's base
    official = "f" * 64
    monkeypatch.setitem(download.OFFICIAL, "tiny", ("sam_tiny.pth", None, official))
    monkeypatch.setattr(build, "download_checkpoint", lambda model_type, progress=True: setup / "tiny.pth")
    model = build_model(_config(setup, tmp_path / "d", checkpoint="download"), torch.device("cpu"))
    assert model.base_sha256 == official and model.adapter_metadata()["base_sha256"] == official


# ----------------------------------------------------------------------------- precision


@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float16), ((7, 0), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_bf16_only_from_compute_capability_8(monkeypatch, capability, dtype):
    from samocta.model.speed import autocast_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # as a T4 reports it
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    assert autocast_dtype(torch.device("cuda")) == dtype
    assert autocast_dtype(torch.device("cpu")) == torch.bfloat16
