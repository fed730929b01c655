"""Segmenting scans without labels: automatic prompts, the predict command, self-describing adapters."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from inputs import training_inputs

from samocta.cli import main
from samocta.data import OCTA500, read_grey
from samocta.decode import AutoPromptFallback, auto_prompt
from samocta.model import MaskOutput
from samocta.prompts import PromptSpec, confident_points
from samocta.train import TrainConfig, read_history, train_fold


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A FAZ adapter (LoRA + decoder, half the samples without prompts) trained 2 epochs on small synthetic data."""
    root = training_inputs(tmp_path_factory.mktemp("predict"), n=8, seed=11)
    config = TrainConfig(data=str(root / "data"), task="FAZ", checkpoint=str(root / "tiny.pth"), epochs=2, batch_size=4,
                         train_decoder=True, no_prompt_fraction=0.5, out=str(root / "run"), device="cpu")
    result = train_fold(config, progress=False)
    return root, result


def test_mixed_runs_validate_with_and_without_prompts_and_describe_themselves(run):
    from samocta.model import LoRASam

    root, result = run
    history = read_history(result.run_dir)
    assert all(0 <= r["val_dice_none"] <= 1 for r in history)
    best = max(history, key=lambda r: (r["val_dice"] + r["val_dice_none"]) / 2)
    assert result.best_epoch == best["epoch"]  # chosen on the mean of the two
    meta = LoRASam.read_adapter(result.run_dir / "adapter_best.safetensors")[1]
    assert {k: meta[k] for k in ("task", "fov", "prompt_mode", "no_prompt_fraction", "train_decoder", "mask_rule", "image_size")} == {
        "task": "FAZ", "fov": "3M", "prompt_mode": "global", "no_prompt_fraction": "0.5", "train_decoder": "True",
        "mask_rule": "most_confident", "image_size": "96x96"}
    with pytest.warns(UserWarning, match="--train-decoder"):
        TrainConfig(no_prompt_fraction=0.5)


class Flat:
    """A stand-in model whose every pass says 'unsure' (probability 0.5 everywhere)."""

    mask_rule = "single"

    def eval(self):
        return self

    def embed(self, images):
        return np.asarray(images)

    def decode(self, embedding, coords, labels):
        logits = torch.zeros(1, 1, *embedding.shape[1:3])
        return MaskOutput(logits, logits, torch.ones(1, 1), torch.zeros(1, dtype=torch.long))

    def decode_unprompted(self, embedding):
        return self.decode(embedding, [np.zeros((0, 2), np.float32)], [np.zeros(0, np.int64)])


def test_auto_prompts_fall_back_to_the_prompt_free_result_and_say_so():
    with pytest.warns(AutoPromptFallback, match="no confident region"):
        coords, labels, mask = auto_prompt(Flat(), np.zeros((1, 32, 32, 3), np.uint8), PromptSpec.paper("FAZ", "global"),
                                           np.random.default_rng(0))
    assert len(labels) == 0 and not mask.any()


def test_confident_points_stay_off_the_pixels_the_model_is_unsure_of():
    probability = np.zeros((60, 60))
    probability[20:30, 20:30] = 0.95
    probability[15:35, 15:20] = 0.5  # an unsure rim on one side
    for seed in range(20):
        prompt = confident_points(probability, 2, 3, np.random.default_rng(seed))
        cols, rows = (prompt.coords - 0.5).astype(int).T
        assert (probability[rows[prompt.labels == 1], cols[prompt.labels == 1]] >= 0.8).all()
        neg = probability[rows[prompt.labels == 0], cols[prompt.labels == 0]]
        assert (neg <= 0.2).all()


def test_predict_on_a_tree_without_labels(run, tmp_path, capsys):
    root, result = run
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    hidden = OCTA500(root / "data", "3M")
    shutil.rmtree(data / "Label")  # nobody has labelled these scans
    out = tmp_path / "out"
    argv = ["predict", "--adapter", str(root / "run"), "--input", str(data), "--out", str(out), "--quiet"]
    assert main([*argv, "--prompts", "auto"]) == 0
    table = pd.read_csv(out / "measurements.csv")
    assert sorted(table["id"]) == hidden.ids and set(table["prompts"]) == {"auto"}
    for sid in hidden.ids:
        mask = read_grey(out / "GT_FAZ" / f"{sid}.png")
        assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 255}
        assert (out / "overlays" / f"{sid}.png").exists()
    from samocta.measure import measure

    for sid, area in zip(table["id"], table["faz_area_mm2"]):  # the table measures the masks written
        written = measure(read_grey(out / "GT_FAZ" / f"{sid}.png") > 0, "FAZ", "3M")["faz_area_mm2"]
        assert area == pytest.approx(written, nan_ok=True)
    capsys.readouterr()
    assert main(argv) == 1  # outputs are never overwritten silently
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    # clicked points for a subject that is not there are refused, naming it
    (tmp_path / "clicks.json").write_text(json.dumps({"99999": {"points": [[10.5, 10.5]], "labels": [1]}}))
    capsys.readouterr()
    assert main([*argv, "--overwrite", "--prompts", str(tmp_path / "clicks.json")]) == 1
    assert "99999" in capsys.readouterr().err


def test_the_widget_json_gives_predict_the_mask_the_widget_showed(run, tmp_path):
    from samocta.predict import load_model
    from samocta.reader import click_prompts

    root, result = run
    model = load_model(root / "run")
    index = OCTA500(root / "data", "3M")
    sid = index.ids[0]
    image = index.load(sid).image
    saved = tmp_path / "clicks.json"
    clicker = click_prompts(image, model, points=[(48.5, 48.5, 1)], save_to=saved)
    # what the canvas sends for a right click and a left click, then an undo and a click again
    for message in ({"kind": "add", "x": 20.3, "y": 70.8, "label": 0}, {"kind": "add", "x": 5, "y": 5, "label": 1},
                    {"kind": "undo"}, {"kind": "add", "x": 60.25, "y": 40.5, "label": 1}):
        clicker._on_message(clicker.widget, message)
    assert clicker.state.labels == [1, 0, 1]
    out = tmp_path / "out"
    assert main(["predict", "--adapter", str(root / "run"), "--input", str(root / "data"), "--ids", str(sid),
                 "--prompts", str(saved), "--out", str(out), "--quiet"]) == 0
    assert np.array_equal(read_grey(out / "GT_FAZ" / f"{sid}.png") > 0, clicker.mask)


def test_predict_brings_scans_of_another_size_to_the_adapters_and_refuses_where_the_pixel_size_is_unknown(run, tmp_path, capsys):
    from samocta.synth import write_folder, write_octa500

    root, _ = run  # trained on 96 px 3M scans
    write_octa500(tmp_path / "big", "3M", n=2, seed=1, size=128, progress=False)
    code = main(["predict", "--adapter", str(root / "run"), "--input", str(tmp_path / "big"), "--out", str(tmp_path / "o"),
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "o" / "measurements.csv")
    assert (table["size"] == "128x128").all() and np.allclose(table["pixel_um"], 3000 / 128)
    assert table["shown"].str.startswith("resampled to 96 x 96 px").all()
    for sid in table["id"]:
        assert read_grey(tmp_path / "o" / "GT_FAZ" / f"{sid}.png").shape == (128, 128)
    # a folder of 128 px scans that says nothing of its width: refused, naming both sizes and the fix
    write_folder(tmp_path / "unknown", n=2, seed=1, size=128, projections=("OPL_BM", "ILM_OPL", "FULL"), tasks=("FAZ",),
                 describe=False, progress=False)
    (tmp_path / "unknown" / "labels").rename(tmp_path / "labels-elsewhere")
    (tmp_path / "unknown" / "dataset.json").write_text('{"projections": ["OPL_BM", "ILM_OPL", "FULL"]}')
    code = main(["predict", "--adapter", str(root / "run"), "--input", str(tmp_path / "unknown"), "--out", str(tmp_path / "u"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "128 x 128 px" in err and "96 x 96 px" in err and "--fov-mm" in err and "Traceback" not in err
    assert err.count("error:") == 1


def test_evaluate_scores_auto_prompts_beside_the_others(run):
    from samocta.evaluate import evaluate_run

    _, result = run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutoPromptFallback)
        results = evaluate_run(result.run_dir, ["none", "auto", "global"], part="val", progress=False)
    assert set(results["mode"]) == {"none", "auto", "global"}
    auto = results[results["mode"] == "auto"]
    assert (auto["target_pixels"] == results[results["mode"] == "none"]["target_pixels"].values).all()  # the whole label


def test_predict_names_missing_projections_and_bare_adapters(run, tmp_path, capsys):
    from samocta.core.files import save_safetensors
    from samocta.model import LoRASam

    root, result = run
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    sid = OCTA500(data, "3M").ids[0]
    missing = data / "OCTA_3mm" / "Projection Maps" / "OCTA(ILM_OPL)" / f"{sid}.bmp"
    missing.unlink()
    argv = ["predict", "--adapter", str(root / "run"), "--input", str(data), "--out", str(tmp_path / "o"), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
    tensors, _ = LoRASam.read_adapter(result.run_dir / "adapter_best.safetensors")
    from samocta.model.lora import adapter_digest

    save_safetensors(tensors, tmp_path / "bare.safetensors", {"model_type": "tiny",
                                                             "digest": adapter_digest(tensors, {"model_type": "tiny"})})
    assert main(["predict", "--adapter", str(tmp_path / "bare.safetensors"), "--input", str(root / "data"),
                 "--out", str(tmp_path / "o2"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "lacks ['rank', 'alpha', 'dropout', 'train_decoder', 'mask_rule', 'task']" in err


def test_predict_writes_a_quality_and_flags_the_lowest_share_for_review(run, tmp_path, capsys):
    root, result = run
    out = tmp_path / "q"
    assert main(["predict", "--adapter", str(root / "run"), "--input", str(root / "data"), "--out", str(out),
                 "--review-rate", "0.25", "--quiet"]) == 0
    table = pd.read_csv(out / "measurements.csv")
    for column in ("predicted_iou", "agreement", "confidence", "quality", "review", "faz_area_mm2_low", "faz_area_mm2_high"):
        assert column in table.columns, column
    # a scan with a reason is flagged whatever its quality (samocta.predict.review); the lowest quality fill the share
    reasoned = table["review_reason"].fillna("") != ""
    assert table["review"].sum() == max(round(0.25 * len(table)), reasoned.sum()) and table.loc[reasoned, "review"].all()
    rest = table[~reasoned]
    if rest["review"].any():
        assert rest.loc[rest["review"], "quality"].max() <= rest.loc[~rest["review"], "quality"].min()
    assert ((table["faz_area_mm2_low"] <= table["faz_area_mm2"]) & (table["faz_area_mm2"] <= table["faz_area_mm2_high"])).all()
    assert table["agreement"].between(0, 1).all() and table["confidence"].between(0, 1).all()
    assert table["predicted_iou"].notna().all()
    assert "to review" in capsys.readouterr().out
    assert main(["predict", "--adapter", str(root / "run"), "--input", str(root / "data"), "--out", str(tmp_path / "r"),
                 "--review-rate", "2"]) == 1
    assert "--review-rate" in capsys.readouterr().err


def test_confidence_is_one_for_a_certain_mask_and_falls_as_its_pixels_grow_unsure():
    from samocta.predict.quality import self_dice

    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    certain = torch.where(torch.as_tensor(mask), 30.0, -30.0)[None, None]
    assert self_dice(certain, mask) == pytest.approx(1.0)
    # every foreground pixel at p = 0.75, the rest at 0: (2 * 0.75 * 16 + 1) / (0.75 * 16 + 16 + 1)
    unsure = torch.where(torch.as_tensor(mask), float(np.log(3)), -30.0)[None, None]
    assert self_dice(unsure, mask) == pytest.approx(25 / 29, rel=1e-6)
    # a certain empty mask is certain too
    assert self_dice(torch.full((1, 1, 8, 8), -30.0), np.zeros((8, 8), bool)) == pytest.approx(1.0)


def test_calibration_catches_the_worst_masks_a_score_ranks_last():
    from samocta.predict import calibrate, review_flags

    dice = np.linspace(0.5, 0.95, 20)
    perfect = calibrate(dice + 0.01, dice, review_rate=0.1)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["caught"] == 1.0 and perfect["n_review"] == 2
    reversed_ = calibrate(-dice, dice, review_rate=0.1)
    assert reversed_["spearman"] == pytest.approx(-1.0) and reversed_["caught"] == 0.0
    assert review_flags([0.9, 0.2, 0.5, 0.95], 0.5).tolist() == [False, True, True, False]


def test_evaluate_clicks_writes_curves_and_noc_and_agrees_with_the_session(run, capsys):
    from samocta.core import runs
    from samocta.data import Split
    from samocta.decode import scan_views
    from samocta.evaluate import click_curve
    from samocta.predict import load_model
    from samocta.prompts import fixed_rng

    root, result = run
    assert main(["evaluate", "--run", str(result.run_dir), "--modes", "clicks", "--max-clicks", "3", "--part", "val",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "NoC@85" in printed and "not reached" in printed
    curves = pd.read_csv(runs.clicks(result.run_dir, "val"))
    summary = pd.read_csv(runs.click_summary(result.run_dir, "val"))
    val = Split.from_json(result.run_dir / "split.json").val
    assert sorted(set(curves["id"].astype(str))) == sorted(map(str, val)) and set(curves["click"]) == {0, 1, 2, 3}
    assert summary["n_subjects"].iloc[0] == len(val) and not curves["feedback"].iloc[0]  # the tiny SAM: no feedback
    model = load_model(result.run_dir)
    sample = OCTA500(root / "data", "3M").load(val[0])
    resampling, embeddings = scan_views(model, sample.image, sample.pixel_um, "x")
    curve = click_curve(model, resampling, embeddings, sample.labels["FAZ"], 3, rng=fixed_rng(0, sample.id))
    mine = curves[curves["id"].astype(str) == str(val[0])].sort_values("click")["dice"].to_numpy()
    np.testing.assert_allclose(mine, curve.dice)
    assert main(["evaluate", "--run", str(result.run_dir), "--max-clicks", "3"]) == 1
    assert "add clicks to --modes" in capsys.readouterr().err


def test_the_regional_report_is_the_same_numbers_from_the_cli_and_the_api_and_documents_every_column(run, tmp_path, capsys):
    import re
    from pathlib import Path

    from samocta.measure import COLUMNS
    from samocta.predict import load_model, predict_scans

    root, result = run
    # an RV adapter beside the FAZ one: its grid sits on the FAZ adapter's FAZ, with an FD-300
    rv = TrainConfig(data=str(root / "data"), task="RV", checkpoint=str(root / "tiny.pth"), epochs=1, batch_size=4,
                     out=str(root / "rv"), device="cpu")
    rv_dir = train_fold(rv, progress=False).run_dir
    args = ["predict", "--adapter", str(rv_dir), "--checkpoint", str(root / "tiny.pth"), "--input", str(root / "data"),
            "--ids", "10301,10451,10452", "--eye", "OD", "--faz-adapter", str(result.run_dir), "--report", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "cli")]) == 0
    table = pd.read_csv(tmp_path / "cli" / "measurements.csv")
    table["review_reason"] = table["review_reason"].fillna("")  # an empty cell reads as NaN
    assert set(table["grid_centre"]) == {"FAZ centroid"} and table["fd300_pct"].notna().all()
    assert {"density_inner_nasal_pct", "density_inner_temporal_pct", "density_centre_pct", "fractal_dimension"} <= set(table)
    # the Python API gives the same numbers, bit for bit
    model = load_model(rv_dir, str(root / "tiny.pth"))
    api = predict_scans(model, root / "data", tmp_path / "api", ids=["10301", "10451", "10452"], eye="OD", progress=False,
                        faz_model=load_model(result.run_dir, str(root / "tiny.pth")))
    pd.testing.assert_frame_equal(api.reset_index(drop=True), table, check_dtype=False, check_exact=True)
    # the page lists every scan, flagged ones first, each figure on disk
    page = (tmp_path / "cli" / "report.html").read_text()
    shown = re.findall(r'src="report/([^"]+)\.png"', page)
    assert sorted(shown) == sorted(str(i) for i in table["id"])
    flagged = table[table["review"]]
    reasoned = [str(i) for i in flagged.loc[flagged["review_reason"].fillna("") != "", "id"]]
    assert set(shown[: len(flagged)]) == {str(i) for i in flagged["id"]} and set(shown[: len(reasoned)]) == set(reasoned)
    assert all((tmp_path / "cli" / "report" / f"{i}.png").stat().st_size > 0 for i in shown)
    # every column is documented in one place, and the README and --help print that place
    patterns = [re.compile("^" + re.escape(k).replace(re.escape("<region>"), r"[a-z_]+") + "$") for k in COLUMNS
                if "/" not in k] + [re.compile(r"^grid_[xy]_px$"), re.compile(r"^.+_(low|high)$")]
    assert all(any(p.match(c) for p in patterns) for c in table.columns), [c for c in table.columns if not any(p.match(c) for p in patterns)]
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in COLUMNS), [n for n in COLUMNS if f"`{n}`" not in readme]


def test_a_report_figure_leaves_the_notebooks_plotting_as_it_was(tmp_path):
    """Writing the report in a notebook must not switch pyplot's backend or leave figures open: once it did (pyplot
    forced to Agg), and every later figure of the kernel stopped showing."""
    import matplotlib
    import matplotlib.pyplot as plt

    from samocta.predict.report import scan_figure

    before = matplotlib.get_backend()
    plt.switch_backend("pdf")  # a backend the report must not replace with Agg
    try:
        open_figures = plt.get_fignums()
        row = {"id": "scan", "task": "RV", "area_density_pct": 5.0}
        mask = np.zeros((64, 64), bool)
        mask[20:40, 30:34] = True
        scan_figure(row, np.full((64, 64, 3), 90, np.uint8), mask, ["ILM_OPL", "FULL", "OPL_BM"], tmp_path / "scan.png")
        assert (tmp_path / "scan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.get_backend() == "pdf" and plt.get_fignums() == open_figures
    finally:
        plt.switch_backend(before)
