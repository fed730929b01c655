"""Trust that no input can strip (issue 46): the review flag catches what is worst, a declared width its scans
contradict is said, every output row is one scan and every output file belongs to its table, outputs other
programs read stay text, and what is left of the tracebacks. Command-line cases run through
``samocta.cli.main`` and end in one ``error:`` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import torch
from inputs import training_inputs
from PIL import Image

from samocta.cli import main
from samocta.core.errors import InputError, SamOctaError
from samocta.measure import measure
from samocta.synth import make_sample, write_folder
from samocta.train import TrainConfig, train_fold

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An RV adapter (LoRA + decoder) trained 3 epochs on small synthetic scans, 3 x 3 mm, and its inputs."""
    base = training_inputs(tmp_path_factory.mktemp("trust"), n=8, seed=7)
    config = TrainConfig(data=str(base / "data"), task="RV", checkpoint=str(base / "tiny.pth"), epochs=3, batch_size=4,
                         train_decoder=True, device="cpu", out=str(base / "run"), channels="FULL")
    train_fold(config, progress=False)
    return base


def _scans(folder: Path, names: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, pixels in names.items():
        Image.fromarray(pixels).save(folder / f"{name}.png")
    (folder / "dataset.json").write_text(json.dumps({"projections": ["FULL"], "fov_mm": 3.0}))
    return folder


def _synthetic(seed: int, size: int = 96) -> np.ndarray:
    return make_sample("3M", seed=seed, size=size).image[..., 2]


def _lines(capsys) -> tuple[list[str], list[str]]:
    captured = capsys.readouterr()
    return captured.out.splitlines(), captured.err.splitlines()


# ----------------------------------------------------------------------------- 2. the flag catches the worst


def test_blank_and_signal_free_scans_rank_first_for_review_with_their_reason(run, tmp_path, capsys):
    from samocta.model.lora import parse_stats
    from samocta.predict import load_model

    model = load_model(run / "run", str(run / "tiny.pth"))
    stats = parse_stats(model.trained_with["label_stats"])
    assert set(stats) == {"area_pct", "mean_width_um"} and stats["area_pct"][0] > 0  # what training recorded
    assert set(parse_stats(model.trained_with["mask_stats"])) == {"area_pct", "mean_width_um"}  # and its own masks
    scans = {f"scan{i}": _synthetic(100 + i) for i in range(8)}
    scans |= {"black": np.zeros((96, 96), np.uint8), "white": np.full((96, 96), 255, np.uint8),
              "speckle": np.where(np.random.default_rng(0).random((96, 96)) < 0.005, 255, 0).astype(np.uint8)}
    source = _scans(tmp_path / "in", scans)
    assert main(["predict", "--adapter", str(run / "run"), "--checkpoint", str(run / "tiny.pth"), "--input", str(source),
                 "--out", str(tmp_path / "out"), "--report", "--quiet"]) == 0
    out, _ = _lines(capsys)
    table = pd.read_csv(tmp_path / "out" / "measurements.csv", dtype={"id": str}, keep_default_na=False).set_index("id")
    for blank in ("black", "white", "speckle"):
        assert table.loc[blank, "review"] and "no signal" in table.loc[blank, "review_reason"], table.loc[blank]
    flagged = [line for line in out if line.startswith("to review")]
    assert all(any(blank in line for line in flagged[:3]) for blank in ("black", "white", "speckle"))
    page = (tmp_path / "out" / "report.html").read_text()
    order = [page.index(f"{name}</h2>") for name in ("black", "white", "speckle", "scan0")]
    assert max(order[:3]) < order[3] and page.count("no signal in the scan") == 3


def test_a_scan_declared_at_half_its_width_is_flagged_and_one_at_its_own_is_not():
    from samocta.model.lora import parse_stats
    from samocta.predict.review import review_reasons
    from samocta.train.record import mask_stats

    trained = [make_sample("3M", seed=s) for s in range(6)]
    for task in ("RV", "FAZ"):
        stats = parse_stats(json.dumps(mask_stats([s.labels[task] for s in trained], task, 3.0)))
        for seed in (30, 31):
            six = make_sample("6M", seed=seed)  # 6 x 6 mm over 400 px
            mask = six.labels[task]
            honest, warned = review_reasons(six.image, mask, task, measure(mask, task, 6.0), stats, 6.0)
            assert not honest and warned is None, honest
            wrong, warning = review_reasons(six.image, mask, task, measure(mask, task, 3.0), stats, 3.0)
            assert warning and "3 mm" in warning and any("is the scan's width 3 mm?" in r for r in wrong), wrong


def test_predict_and_check_data_say_when_a_scans_vessels_contradict_its_declared_width(run, tmp_path, capsys):
    from samocta.core.files import save_safetensors
    from samocta.model import LoRASam
    from samocta.model.lora import adapter_digest

    # the adapter as trained, but its records say its labels' and masks' vessels were 400 um wide: every scan's
    # own vessels now contradict the width it is declared at (a digest of the edited metadata keeps it loadable)
    tensors, meta = LoRASam.read_adapter(run / "run" / "standard" / "adapter_best.safetensors")
    wide = {key: json.dumps({**json.loads(meta[key]), "mean_width_um": [400.0, 410.0, 420.0]})
            for key in ("label_stats", "mask_stats")}
    edited = {k: v for k, v in meta.items() if k != "digest"} | wide
    adapter = tmp_path / "wide.safetensors"
    save_safetensors(tensors, adapter, {**edited, "digest": adapter_digest(tensors, edited)})
    source = _scans(tmp_path / "in", {f"scan{i}": _synthetic(200 + i) for i in range(3)})
    assert main(["predict", "--adapter", str(adapter), "--checkpoint", str(run / "tiny.pth"), "--input", str(source),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    _, err = _lines(capsys)
    table = pd.read_csv(tmp_path / "out" / "measurements.csv", keep_default_na=False)
    drawn = table["mean_width_um"].notna() & (table["area_density_pct"] > 0)
    assert drawn.any()
    assert all("is the scan's width 3 mm?" in r for r in table.loc[drawn, "review_reason"]) and table.loc[drawn, "review"].all()
    assert sum("warning: scan" in line and "check its width in mm" in line for line in err) == int(drawn.sum())
    code = main(["check-data", str(source), "--adapter", str(adapter), "--checkpoint", str(run / "tiny.pth")])
    out, err = _lines(capsys)
    assert code == 1 and sum("segmented with the adapter" in line and "in mm" in line for line in out) == int(drawn.sum())
    # the adapter as trained, on its own validation scans at their own width: predict's masks measure what its
    # validation recorded (one decode), so none of them is in doubt
    from samocta.data import OCTA500, Split

    split = Split.from_json(run / "run" / "standard" / "split.json")
    index = OCTA500(run / "data", "3M", "FULL")
    own = _scans(tmp_path / "own", {str(sid): index.load(sid).image[..., 0] for sid in split.val})
    assert main(["check-data", str(own), "--adapter", str(run / "run"), "--checkpoint", str(run / "tiny.pth")]) == 0, \
        capsys.readouterr().out


# ----------------------------------------------------------------------------- 4. two scans, one row


def test_every_output_row_is_one_scan_and_every_file_belongs_to_its_table(run, tmp_path, capsys):
    flat = tmp_path / "flat"  # <id>_FULL files: stems "1" and "01" are two scans, not one id
    flat.mkdir()
    for stem, seed in (("1", 1), ("01", 2), ("scan_OS", 3)):
        for layer in ("OPL_BM", "ILM_OPL", "FULL"):
            Image.fromarray(_synthetic(seed)).save(flat / f"{stem}_{layer}.png")
    args = ["predict", "--adapter", str(run / "run"), "--checkpoint", str(run / "tiny.pth"), "--input", str(flat),
            "--fov-mm", "3", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "out"), "--report"]) == 0
    table = pd.read_csv(tmp_path / "out" / "measurements.csv", dtype={"id": str})
    assert sorted(table["id"]) == ["01", "1", "scan_OS"]
    assert sorted(p.name for p in (tmp_path / "out" / "GT_LargeVessel").iterdir()) == ["01.png", "1.png", "scan_OS.png"]
    capsys.readouterr()
    # the same scan twice is refused, not two rows
    assert main([*args, "--out", str(tmp_path / "twice"), "--ids", "1,01,1"]) == 1
    assert "--ids names 1 more than once" in capsys.readouterr().err and not (tmp_path / "twice").exists()
    # an eye that a file's own name contradicts
    assert main([*args, "--out", str(tmp_path / "eye"), "--eye", "OD"]) == 1
    assert "say the other eye (scan_OS)" in capsys.readouterr().err
    # overwritten with fewer scans and no report: the earlier prediction's other files go with its table
    assert main([*args, "--out", str(tmp_path / "out"), "--ids", "1", "--overwrite"]) == 0
    left = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert left == [".lock", "GT_LargeVessel/1.png", "measurements.csv", "overlays/1.png"], left
    # a file no table lists (a user's own labels, say) is never removed: the prediction is refused instead
    (tmp_path / "out" / "GT_LargeVessel" / "mine.png").write_bytes((flat / "01_FULL.png").read_bytes())
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "out"), "--ids", "1", "--overwrite"]) == 1
    assert "no prediction's table there lists" in capsys.readouterr().err
    assert (tmp_path / "out" / "GT_LargeVessel" / "mine.png").is_file()


# ----------------------------------------------------------------------------- 5. outputs other programs read


def test_a_scan_name_is_text_in_the_table_and_a_path_in_the_page(run, tmp_path, capsys):
    source = _scans(tmp_path / "in", {"=1+2": _synthetic(1), "a#b": _synthetic(2), "x%3Cy": _synthetic(3),
                                      "@sum(a1)": _synthetic(4)})
    assert main(["predict", "--adapter", str(run / "run"), "--checkpoint", str(run / "tiny.pth"), "--input", str(source),
                 "--out", str(tmp_path / "out"), "--report", "--quiet"]) == 0
    rows = (tmp_path / "out" / "measurements.csv").read_text().splitlines()[1:]
    assert not any(row[0] in "=+-@" for row in rows)  # no cell a spreadsheet would run
    assert sorted(row.split(",")[0] for row in rows) == sorted(["'=1+2", "a#b", "x%3Cy", "'@sum(a1)"])
    from samocta.core.files import plain_text

    assert plain_text("'=1+2") == "=1+2" and plain_text("'quoted") == "'quoted"
    page = (tmp_path / "out" / "report.html").read_text()
    import re

    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 4 and all((tmp_path / "out" / unquote(src)).is_file() for src in sources), sources
    assert "a%23b.png" in page and "x%253Cy.png" in page


# ----------------------------------------------------------------------------- 6. tracebacks and silent wrongs


def test_the_api_refuses_what_it_cannot_mean_in_words(run):
    from samocta.decode import PromptState
    from samocta.model import PromptableSam, build_sam
    from samocta.predict import predict
    from samocta.prompts import PromptError, global_points, local_points

    model = PromptableSam(build_sam("tiny", pretrained=False))
    model.trained_with = {"image_size": "96x96", "fov_mm": "3.0"}
    for shape, size in (((1, 1, 3), 3000.0), ((0, 0, 3), 3000.0), ((5, 1, 3), 1000.0)):
        with pytest.raises(InputError, match="a scan is at least 16 px a side"):
            predict(model, np.zeros(shape, np.uint8), pixel_um=size)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    for kwargs, said in ((dict(n_pos=None), "n_pos"), (dict(band=(1, float("inf"))), "band"), (dict(n_neg=1.5), "n_neg")):
        with pytest.raises(PromptError, match=said):
            global_points(mask, rng=np.random.default_rng(0), **kwargs)
    with pytest.raises(PromptError, match="0.5"):
        global_points(np.full((32, 32), 0.5), rng=np.random.default_rng(0))
    with pytest.raises(PromptError, match="other has NaN"):
        local_points(mask, rng=np.random.default_rng(0), other=np.full((32, 32), np.nan))
    assert len(global_points(mask.astype(np.uint8), rng=np.random.default_rng(0))) == 2  # 0 and 1 are a mask
    embedding = model.embed(np.zeros((1, 64, 64, 3), np.uint8))
    many = np.random.default_rng(0).random((2000, 2)).astype(np.float32) * 64
    with pytest.raises(InputError, match="at most 1,024"):
        model.decode(embedding, [many], [np.ones(2000, np.int64)])
    state = PromptState()
    for x, y in ((1e12, 5.0), (-4.0, 5.0), (5.0, 3000.0)):
        with pytest.raises(ValueError, match="lies on no image"):
            state.add(x, y, 1)
    state.add(100.5, 20.5, 1)


def test_files_that_are_not_what_they_claim_end_in_one_line(run, tmp_path, capsys):
    from samocta.model import CheckpointError, build_sam
    from samocta.model.download import download

    state = build_sam("tiny", pretrained=False).state_dict()
    torch.save({**state, "image_encoder.pos_embed": [1.0, 2.0]}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="no tensors: \\['image_encoder.pos_embed'\\]"):
        build_sam("tiny", tmp_path / "odd.pth")
    (tmp_path / "afile").write_text("a file where the cache folder would be")  # no folder can be made there, root or not
    with pytest.raises(CheckpointError, match="cannot keep a checkpoint in .*SAMOCTA_CACHE"):
        download("http://127.0.0.1:9/none", tmp_path / "afile" / "sub" / "c.pth", "0" * 64, progress=False, timeout=1)
    # a .part that is a link: refused, with no promise that the next call resumes it
    (tmp_path / "c.pth.part").symlink_to(tmp_path / "odd.pth")
    with pytest.raises(SamOctaError) as refused:
        download("http://127.0.0.1:9/none", tmp_path / "c.pth", "0" * 64, progress=False, timeout=1)
    assert "resumes" not in str(refused.value)


def test_a_tree_or_folder_that_would_make_a_run_wrong_is_said_by_check_data(tmp_path, capsys):
    from samocta.synth import write_octa500

    tree = tmp_path / "tree"
    write_octa500(tree, "3M", n=4, seed=1, size=64, progress=False)
    full = next((tree / "OCTA_3mm" / "Projection Maps" / "OCTA(FULL)").iterdir())
    (full.parent / f"._{full.name}").write_bytes(b"\0\5\26\7 macOS resource fork")  # a copy from a Mac's disk
    assert main(["check-data", str(tree), "--no-orientation"]) == 0
    capsys.readouterr()
    for path in tree.rglob(full.name):  # one subject of another size, its projections and labels alike
        Image.open(path).resize((80, 80), Image.NEAREST).save(path)
    assert main(["check-data", str(tree), "--no-orientation"]) == 1
    assert "80 x 80 px, where the tree's other subjects are 64 x 64" in capsys.readouterr().out

    folder = tmp_path / "folder"
    write_folder(folder, n=4, seed=1, size=64, fov_mm=3.0, progress=False)
    meta = (folder / "dataset.json").read_text()
    (folder / "dataset.json").write_text(meta[:-1].rstrip().rstrip("}") + ', "fov_mm": 6.0}')  # the width twice
    assert main(["check-data", str(folder), "--no-orientation"]) == 1
    assert "the key 'fov_mm' appears twice" in capsys.readouterr().out
    (folder / "dataset.json").unlink()
    os.mkfifo(folder / "dataset.json")  # a FIFO is not an absent file: refused, never read as none
    assert main(["check-data", str(folder), "--no-orientation"]) == 1
    assert "not a regular file" in capsys.readouterr().out


# ----------------------------------------------------------------------------- 7. benchmarks are commands too


@pytest.mark.parametrize("script, args, said", [
    ("bench_quality_real.py", ["{missing}"], "no trained run at"),
    ("bench_quality_real.py", ["{run}", "--choose", "0"], "--choose is how many"),
    ("bench_quality_real.py", ["{run}", "--choose", "-3"], "--choose is how many"),
    ("bench_measure.py", ["{data}", "{missing}"], "no trained run at"),
    ("bench_measure.py", ["{data}", "{run}"], "was trained on"),
    ("bench_real.py", ["{data}", "--max-clicks", "0"], "--max-clicks is 1 to 100"),
])
def test_the_benchmark_scripts_end_a_mistake_in_one_line(run, tmp_path, script, args, said):
    data = tmp_path / "real"
    data.mkdir()
    (data / "dataset.json").write_text("{}")
    values = {"missing": str(tmp_path / "none"), "run": str(run / "run"), "data": str(data)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *(a.format(**values) for a in args)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (1, 2) and said in done.stderr and "Traceback" not in done.stderr, done.stderr


# ----------------------------------------------------------------------------- 8. messages


def test_an_edited_run_config_is_told_as_the_file_it_is(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run / "run", copy)
    config = copy / "standard" / "config.json"
    config.write_text(config.read_text().replace('"input_size": null', '"input_size": 100'))
    assert main(["evaluate", "--run", str(copy), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{config}: input_size must be 256 to 1024; got 100" in err and "--input-size" not in err and "--out" not in err
    assert err.count(str(config)) == 1


def test_a_benchmark_on_real_data_leaves_none_of_it_behind(run, tmp_path):
    plot = ROOT / "book" / "figures" / "bland_altman_real_rv.png"
    results = ROOT / "benchmarks" / "RESULTS.md"
    before = (plot.read_bytes() if plot.exists() else None, results.read_bytes())
    # a synthetic stand-in for the real copy, in its form (ILM_OPL, large vessels, 3 mm, a split), and a run on it
    data = tmp_path / "real"
    stems = write_folder(data, n=8, seed=5, size=96, fov_mm=3.0, progress=False)
    meta = json.loads((data / "dataset.json").read_text())
    (data / "dataset.json").write_text(json.dumps({**meta, "split": {"train": stems[:4], "val": stems[4:6], "test": stems[6:]}}))
    train_fold(TrainConfig(data=str(data), task="RV", checkpoint=str(run / "tiny.pth"), epochs=1, batch_size=4, device="cpu",
                           out=str(tmp_path / "run")), progress=False)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_measure.py"), str(data), str(tmp_path / "run"),
                           "--no-append"], capture_output=True, text=True, timeout=600, env={**os.environ, "TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| area_density_pct |" in done.stdout
    assert (plot.read_bytes() if plot.exists() else None, results.read_bytes()) == before
    assert not any(scratch.iterdir())  # the masks of the scans it segmented went with their temporary folder
