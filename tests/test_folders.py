"""Real OCTA in the forms it comes in: folder datasets of every layout, one projection or three, any size,
scores across datasets, and one clear error for each way a folder can be wrong."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from samocta.cli import main
from samocta.core.errors import InputError
from samocta.data import (
    LAYERS,
    OCTA500,
    DatasetError,
    FolderDataset,
    id_seed,
    open_dataset,
    read_grey,
    write_grey,
)
from samocta.model import Embedding, MaskOutput
from samocta.synth import make_sample, sample_seed, write_folder, write_octa500


def _one_error_line(err: str) -> None:
    assert err.count("error:") == 1 and "Traceback" not in err, err


# ----------------------------------------------------------------------------- every layout


def test_octa500_trees_open_in_both_layouts_with_the_fov_they_hold(tmp_path):
    write_octa500(tmp_path / "official", "6M", n=3, seed=0, size=64, progress=False)
    write_octa500(tmp_path / "samocta", "3M", n=3, seed=0, size=64, layout="samocta", progress=False)
    official, rearranged = open_dataset(tmp_path / "official"), open_dataset(tmp_path / "samocta")
    assert isinstance(official, OCTA500) and (official.fov, official.layout, official.fov_mm) == ("6M", "official", 6.0)
    assert (rearranged.fov, rearranged.layout) == ("3M", "samocta") and rearranged.channels == LAYERS
    write_octa500(tmp_path / "official", "3M", n=3, seed=0, size=64, progress=False)
    with pytest.raises(DatasetError, match="holds OCTA-500 3M and 6M data: choose one with --fov"):
        open_dataset(tmp_path / "official")
    with pytest.raises(DatasetError, match="disagrees with OCTA-500 3M"):
        open_dataset(tmp_path / "official", "3M", fov_mm=4.5)


def test_the_public_single_projection_copy_of_octa500_reads_the_same_subjects_as_the_release(tmp_path):
    """dataset/OCTA500_3M/{train,val,test}/{image,label}/<id>.bmp: ILM_OPL only, the large-vessel label."""
    write_folder(tmp_path / "copy" / "dataset" / "OCTA500_3M", n=6, seed=3, size=64, layout="split", suffix=".bmp",
                 projections=("ILM_OPL",), tasks=("RV",), describe=False, progress=False)
    write_octa500(tmp_path / "release", "3M", n=6, seed=3, size=64, progress=False)
    copy = open_dataset(tmp_path / "copy", fov_mm=3.0, label_task="RV")  # two levels above the data
    release = open_dataset(tmp_path / "release", channels="ILM_OPL")
    assert isinstance(copy, FolderDataset) and copy.root.name == "OCTA500_3M"
    assert copy.ids == [str(i) for i in release.ids] and copy.tasks == ("RV",) and copy.projections == ("enface",)
    split = copy.own_split()
    assert split.name.endswith("-folders") and [int(i) for i in split.test] == release.own_split().test
    for sid in copy.ids:
        a, b = copy.load(sid), release.load(int(sid), tasks=("RV",))
        np.testing.assert_array_equal(a.image, b.image)  # ILM_OPL in all three channels, either way
        np.testing.assert_array_equal(a.labels["RV"], b.labels["RV"])
        assert id_seed(sid) == id_seed(int(sid))  # so both draw the same prompts and augmentation
    assert copy.validate() == []


def test_rossa_layout_any_stems_and_a_split_of_its_own(tmp_path):
    write_folder(tmp_path / "ROSSA", n=6, seed=1, size=80, fov_mm=3.0, layout="split", stems="index", progress=False)
    index = open_dataset(tmp_path / "ROSSA")
    assert index.ids == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert index.fov_mm == 3.0 and index.fov == "3M" and index.source == "synthetic"
    split = index.own_split()
    assert sorted(split.train + split.val + split.test) == index.ids and split.val
    sample = index.load("0001")
    assert sample.image.shape == (80, 80, 3) and sample.labels["RV"].dtype == bool
    assert sample.pixel_um == pytest.approx(3000 / 80)


def test_flat_folder_of_images_and_labels_per_task(tmp_path):
    write_folder(tmp_path / "clinic", n=5, seed=2, size=72, fov_mm=3.0, stems="name", tasks=("RV", "FAZ"), suffix=".tif",
                 progress=False)
    index = open_dataset(tmp_path / "clinic")
    assert index.tasks == ("RV", "FAZ") and all(i.startswith("scan_") for i in index.ids)
    assert index.own_split().name == "clinic-dataset.json"  # the split written into its dataset.json
    assert index.validate() == []
    assert index.path(index.ids[0], "FAZ").parent.name == "FAZ"


def test_projections_as_subfolders_fill_sams_channels_in_the_papers_order(tmp_path):
    write_folder(tmp_path / "three", n=4, seed=4, size=64, projections=("FULL", "OPL_BM", "ILM_OPL"), layout="subfolders",
                 tasks=("FAZ",), progress=False)
    index = open_dataset(tmp_path / "three")
    assert set(index.projections) == set(LAYERS) and index.channels == LAYERS
    sample = index.load(index.ids[0])
    for c, layer in enumerate(LAYERS):
        np.testing.assert_array_equal(sample.image[..., c], read_grey(tmp_path / "three" / "images" / layer / f"{index.ids[0]}.png"))
    chosen = open_dataset(tmp_path / "three", channels="FULL")
    assert chosen.channels == ("FULL",) * 3 and chosen.used == ("FULL",)


def test_an_rgb_image_is_three_projections_named_by_dataset_json(tmp_path):
    write_folder(tmp_path / "rgb", n=3, seed=5, size=64, projections=LAYERS, tasks=("FAZ",), progress=False)
    index = open_dataset(tmp_path / "rgb")
    assert index.projections == LAYERS
    octa = make_sample("3M", sample_seed(5, int(index.ids[0])), 64)
    np.testing.assert_array_equal(index.load(index.ids[0]).image, octa.image)  # the same subject as the OCTA-500 writer's
    meta = json.loads((tmp_path / "rgb" / "dataset.json").read_text())
    meta.pop("projections")
    (tmp_path / "rgb" / "dataset.json").write_text(json.dumps(meta))
    assert open_dataset(tmp_path / "rgb").projections == ("R", "G", "B")  # unnamed: nothing is guessed


def test_a_plain_folder_of_images_serves_prediction(tmp_path):
    for i in range(2):
        write_grey(tmp_path / "scans" / f"eye{i}.png", np.full((40, 40), 50 + i, np.uint8))
    write_grey(tmp_path / "scans" / "eye2.png", np.full((56, 64), 60, np.uint8))  # a plain folder may mix sizes
    index = open_dataset(tmp_path / "scans")
    assert index.ids == ["eye0", "eye1", "eye2"] and index.tasks == () and index.fov_mm is None
    assert index.load("eye2", tasks=()).image.shape == (56, 64, 3)
    with pytest.raises(DatasetError, match="holds 2 datasets"):
        for name in ("a", "b"):
            write_folder(tmp_path / "two" / name, n=2, seed=0, size=48, progress=False)
        open_dataset(tmp_path / "two")


def test_the_synthetic_folder_writer_is_byte_identical_per_seed_and_records_its_real_width(tmp_path):
    for name in ("a", "b"):
        write_folder(tmp_path / name, n=3, seed=7, size=60, fov_mm=4.5, progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    a, b = (json.loads((tmp_path / name / "dataset.json").read_text()) for name in ("a", "b"))
    assert a.pop("name") == "a" and b.pop("name") == "b" and a == b
    recorded = a["fov_mm"]
    assert recorded == pytest.approx(4.5, rel=0.01) and recorded == 60 * 6.0 / round(60 * 6.0 / 4.5)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture()
def folder(tmp_path):
    write_folder(tmp_path / "d", n=4, seed=0, size=64, fov_mm=3.0, tasks=("RV",), progress=False)
    return tmp_path / "d"


def _refused(folder, capsys, *words):
    """check-data lists the problem and exits 1; train refuses with one error line and writes nothing."""
    code = main(["check-data", str(folder)])
    out = capsys.readouterr().out
    assert code == 1 and all(w in out for w in words), out
    out_dir = folder.parent / "run"
    code = main(["train", "--preset", "paper", "--data", str(folder), "--task", "RV", "--split", "kfold", "--k", "2", "--epochs", "1",
                 "--out", str(out_dir), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and all(w in err for w in words), err
    _one_error_line(err)
    assert not list(out_dir.rglob("*.safetensors")) and not list(out_dir.rglob("config.json"))


def test_a_label_without_an_image(folder, capsys):
    write_grey(folder / "labels" / "RV" / "ghost.png", np.zeros((64, 64), np.uint8))
    _refused(folder, capsys, "ghost.png", "a label without an image")


def test_an_image_without_a_label(folder, capsys):
    stem = json.loads((folder / "dataset.json").read_text())["split"]["train"][0]
    (folder / "labels" / "RV" / f"{stem}.png").unlink()
    _refused(folder, capsys, f"images/{stem}.png", "an image without a label")


def test_two_images_with_one_stem(folder, capsys):
    stem = sorted(p.stem for p in (folder / "images").iterdir())[0]
    shutil.copy(folder / "images" / f"{stem}.png", folder / "images" / f"{stem}.tif")
    _refused(folder, capsys, f"{stem}.tif", "two files with the stem")


def test_mixed_sizes_inside_one_dataset(folder, capsys):
    stem = sorted(p.stem for p in (folder / "images").iterdir())[0]
    write_grey(folder / "images" / f"{stem}.png", np.zeros((70, 70), np.uint8))
    _refused(folder, capsys, f"{stem}.png", "70 x 70 px", "one size")


def test_labels_that_are_not_binary(folder, capsys):
    stem = sorted(p.stem for p in (folder / "images").iterdir())[0]
    label = read_grey(folder / "labels" / "RV" / f"{stem}.png")
    label[0, :10] = 128
    write_grey(folder / "labels" / "RV" / f"{stem}.png", label)
    _refused(folder, capsys, f"RV/{stem}.png", "outside {0, 255}")


def test_an_rgb_label(folder, capsys):
    stem = sorted(p.stem for p in (folder / "images").iterdir())[0]
    label = read_grey(folder / "labels" / "RV" / f"{stem}.png")
    rgb = np.stack([label, np.zeros_like(label), label], axis=-1)
    write_grey(folder / "labels" / "RV" / f"{stem}.png", rgb)
    _refused(folder, capsys, f"RV/{stem}.png", "an RGB label")


def test_an_unknown_task_folder(folder, capsys):
    shutil.copytree(folder / "labels" / "RV", folder / "labels" / "Drusen")
    _refused(folder, capsys, "labels/Drusen", "unknown task folder", "RV, FAZ, Capillary, Artery, Vein")


def test_dataset_json_and_options_that_contradict_the_folders(folder, capsys):
    meta = json.loads((folder / "dataset.json").read_text())
    with pytest.raises(DatasetError, match="--fov-mm 6 disagrees"):
        open_dataset(folder, fov_mm=6.0)
    with pytest.raises(DatasetError, match="--fov 3M picks the 3M or 6M part of an OCTA-500 tree"):
        open_dataset(folder, fov="3M")
    (folder / "dataset.json").write_text(json.dumps({**meta, "fov": 3}))
    with pytest.raises(DatasetError, match="unknown key"):
        open_dataset(folder)
    (folder / "dataset.json").write_text(json.dumps({**meta, "projections": ["ILM_OPL", "FULL", "OPL_BM"]}))
    with pytest.raises(DatasetError, match="3 projection name"):
        open_dataset(folder)


# ----------------------------------------------------------------------------- any size, any channels


class Oracle:
    """A stand-in model that returns as logits what its input's first channel shows (a label drawn as an
    image), with the training frame of an adapter trained on 320 px scans 3 mm wide."""

    task = "FAZ"
    mask_rule = "single"

    def __init__(self, trained_with: dict):
        self.trained_with = trained_with

    def eval(self):
        return self

    def embed(self, images):
        return Embedding(torch.as_tensor(np.asarray(images)[..., 0].astype(np.float32)), images.shape[1:3], images.shape[1:3])

    def decode(self, embedding, coords, labels):
        logits = ((embedding.features - 127.5) / 10)[:, None]
        return MaskOutput(logits, logits, torch.ones(1, 1), torch.zeros(1, dtype=torch.long))

    def decode_unprompted(self, embedding):
        return self.decode(embedding, None, None)


@pytest.mark.parametrize("fov_mm", [4.5, 2.5])  # larger: four overlapping views; smaller: one padded view
def test_a_mask_equal_to_the_label_measures_the_labels_faz_area_at_the_scans_own_size(tmp_path, fov_mm):
    from samocta.measure import measure
    from samocta.predict import predict_scans

    write_folder(tmp_path / "s", n=3, seed=9, size=304, fov_mm=fov_mm, tasks=("FAZ",), progress=False)
    width = json.loads((tmp_path / "s" / "dataset.json").read_text())["fov_mm"]
    for path in (tmp_path / "s" / "labels" / "FAZ").iterdir():  # the scans show their own label
        shutil.copy(path, tmp_path / "s" / "images" / path.name)
    oracle = Oracle({"image_size": "320x320", "fov_mm": "3.0", "fov": "3M", "channels": "ILM_OPL"})
    table = predict_scans(oracle, tmp_path / "s", tmp_path / "out", progress=False)
    assert table["shown"].iloc[0].startswith(f"resampled to {round(width * 1000 / (3000 / 320))} x")
    for row in table.itertuples():
        label = read_grey(tmp_path / "s" / "labels" / "FAZ" / f"{row.id}.png") > 0
        mask = read_grey(tmp_path / "out" / "GT_FAZ" / f"{row.id}.png") > 0
        assert mask.shape == (304, 304)
        truth = measure(label, "FAZ", width)["faz_area_mm2"]
        assert row.faz_area_mm2 == pytest.approx(truth, rel=0.02)
        assert row.pixel_um == pytest.approx(width * 1000 / 304)


def test_a_run_on_one_projection_at_320_px_scores_and_predicts_a_304_px_dataset_of_another_fov(tmp_path, capsys):
    """The issue's case: trained on a single-projection folder at 320 px (3 mm), scored on and used for
    scans of 304 px 4.5 mm wide; masks at each scan's size, rows labelled trained on A, scored on B."""
    from samocta.model import LoRASam

    write_folder(tmp_path / "train320", n=6, seed=1, size=320, fov_mm=3.0, tasks=("FAZ",), progress=False)
    write_folder(tmp_path / "other304", n=4, seed=2, size=304, fov_mm=4.5, tasks=("FAZ",), stems="name", progress=False)
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper", "--data", str(tmp_path / "train320"), "--task", "FAZ", "--epochs", "1", "--batch-size", "2",
                 "--out", str(run), "--quiet", "--device", "cpu"]) == 0
    fold = run / "standard"
    config = json.loads((fold / "config.json").read_text())
    assert config["channels"] == "ILM_OPL" and config["fov"] is None and config["split"] == "standard"
    meta = LoRASam.read_adapter(fold / "adapter_best.safetensors")[1]
    assert (meta["channels"], meta["image_size"], float(meta["fov_mm"]), meta["dataset"]) == ("ILM_OPL", "320x320", 3.0, "train320")

    assert main(["evaluate", "--run", str(run), "--data", str(tmp_path / "other304"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained on train320, scored on other304" in out and "channels ILM_OPL ×3" in out
    (path,) = fold.glob("results-all-on-other304-*.csv")
    results = pd.read_csv(path)
    assert set(results["scored_on"]) == {"other304"} and set(results["trained_on"]) == {"train320"}
    assert len(results) == 2 * 4 and results["id"].str.startswith("scan_").all()
    assert results["target_pixels"].max() < 304 * 304 and np.isfinite(results["hd95_um"]).any()
    assert (fold / "results-test.csv").exists() is False  # the run's own scores are not touched

    assert main(["predict", "--adapter", str(run), "--input", str(tmp_path / "other304"), "--out", str(tmp_path / "p"),
                 "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "p" / "measurements.csv")
    assert len(table) == 4 and (table["size"] == "304x304").all() and table["shown"].str.contains("overlapping").all()
    for stem in table["id"]:
        assert read_grey(tmp_path / "p" / "GT_FAZ" / f"{stem}.png").shape == (304, 304)
    assert table["faz_area_mm2"].notna().all()


def test_an_adapter_meeting_data_with_other_channels_is_refused_with_the_fix(tmp_path, capsys):
    write_folder(tmp_path / "one", n=6, seed=1, size=64, fov_mm=3.0, tasks=("FAZ",), progress=False)
    meta = json.loads((tmp_path / "one" / "dataset.json").read_text())
    (tmp_path / "one" / "dataset.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "projections"}))
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper", "--data", str(tmp_path / "one"), "--task", "FAZ", "--epochs", "1", "--batch-size", "4",
                 "--out", str(run), "--quiet"]) == 0
    write_octa500(tmp_path / "octa", "3M", n=3, seed=0, size=64, progress=False)
    for command in (["evaluate", "--run", str(run), "--data", str(tmp_path / "octa"), "--quiet"],
                    ["predict", "--adapter", str(run), "--input", str(tmp_path / "octa"), "--out", str(tmp_path / "p"), "--quiet"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        _one_error_line(err)
        assert "trained with channels enface ×3" in err and "OPL_BM, ILM_OPL, FULL" in err and "dataset.json" in err


def test_measurements_in_mm_are_refused_without_a_width_and_pixel_ones_stand_in(tmp_path, capsys):
    from samocta.measure import measure, measure_pixels

    label = np.zeros((50, 50), bool)
    label[20:30, 20:30] = True
    with pytest.raises(InputError, match="--fov-mm"):
        measure(label, "FAZ", None)
    assert measure_pixels(label, "FAZ")["faz_area_px"] == 100
    assert measure_pixels(label, "RV")["mean_width_px"] == pytest.approx(measure(label, "RV", 50 / 1000)["mean_width_um"])

    write_folder(tmp_path / "d", n=6, seed=1, size=64, tasks=("FAZ",), describe=False, progress=False)
    (tmp_path / "d" / "dataset.json").write_text(json.dumps({"split": {"train": ["10301", "10302", "10303"],
                                                                       "val": ["10441"], "test": ["10451", "10452"]}}))
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper", "--data", str(tmp_path / "d"), "--task", "FAZ", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    assert main(["predict", "--adapter", str(run), "--input", str(tmp_path / "d"), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert "measurements in mm need the scans' width" in capsys.readouterr().err
    table = pd.read_csv(tmp_path / "p" / "measurements.csv")
    assert "faz_area_px" in table and "faz_area_mm2" not in table and table["pixel_um"].isna().all()


# ----------------------------------------------------------------------------- the geometry, ids, the report


def test_resampling_plans_are_identity_padding_or_overlapping_views_and_points_map_both_ways():
    from samocta.decode import plan_resampling
    from samocta.decode.resample import TrainedFrame

    frame = TrainedFrame((304, 304), 3000 / 304)
    assert plan_resampling((304, 304), 3000 / 304, frame).identity
    assert plan_resampling((304, 304), None, frame).identity  # same size, unknown pixel size: shown as it is
    assert plan_resampling((64, 64), None, None).identity  # a model that records no training images
    with pytest.raises(InputError, match="--fov-mm"):
        plan_resampling((320, 320), None, frame)
    small = plan_resampling((304, 304), 2000 / 304, frame)  # 2 mm: 203 px, centred in one 304 px view
    assert small.resampled_shape == (203, 203) and small.views == ((-50, -50),)
    large = plan_resampling((400, 400), 15.0, frame)  # 6M onto 3M: 608 px, views overlapping by half
    assert large.resampled_shape == (608, 608) and len(large.views) == 9 and {v[0] for v in large.views} == {0, 152, 304}
    points = np.array([[10.5, 20.5], [390.0, 5.0]], np.float32)  # (x, y) on the 400 px scan
    seen = []
    for view in large.views:
        moved, labels = large.points_to_view(points, np.array([1, 0]), view)
        assert ((moved >= 0) & (moved < 304)).all()
        # 608 / 400 = 1.52 resampled px per scan px; the view starts at (top, left)
        expected = points * 1.52 - np.array([view[1], view[0]])
        inside = ((expected >= 0) & (expected < 304)).all(axis=1)
        np.testing.assert_allclose(moved, expected[inside], atol=1e-3)
        np.testing.assert_allclose(large.points_from_view(moved, view), points[inside], atol=1e-3)
        seen += [tuple(p) for p in points[inside]]
    assert set(seen) == {tuple(p) for p in points}  # every point lies in some view


def test_ids_seed_their_subjects_the_same_way_in_every_form():
    assert id_seed(10301) == id_seed("10301") == 10301
    assert id_seed("scan_1") == id_seed("scan_1") != id_seed("scan_2") and id_seed("scan_1") >= 2**62
    from samocta.data import sorted_ids

    assert sorted_ids(["scan_10", "scan_9", "scan_1"]) == ["scan_1", "scan_9", "scan_10"]


def test_a_grid_on_a_folder_dataset_reports_its_scores_on_another_as_trained_on_a_scored_on_b(tmp_path, capsys):
    write_folder(tmp_path / "A", n=6, seed=1, size=64, fov_mm=3.0, tasks=("FAZ",), progress=False)
    write_folder(tmp_path / "B", n=3, seed=2, size=48, fov_mm=2.5, tasks=("FAZ",), stems="name", progress=False)
    grid_dir = tmp_path / "grid"
    assert main(["grid", "plan", "--tasks", "FAZ", "--data", str(tmp_path / "A"), "--split", "standard", "--out", str(grid_dir),
                 "--epochs", "1", "--batch-size", "4", "--device", "cpu"]) == 0
    job = json.loads((grid_dir / "grid.json").read_text())["jobs"][0]
    assert job["id"] == "FAZ-3M-global-standard" and "--fov" not in job["args"]
    assert main(["grid", "job", str(grid_dir), "--index", "0"]) == 0
    assert main(["evaluate", "--run", job["fold_dir"], "--data", str(tmp_path / "B"), "--quiet"]) == 0
    assert main(["report", str(grid_dir), "--bootstrap", "100", "--quiet"]) == 0
    report = (grid_dir / "report.md").read_text()
    assert "| trained on A, scored on B | FAZ | global / global | ILM_OPL ×3 |" in report
    assert "channels ILM_OPL ×3" in report.split("## Table 1")[0]
    across = pd.read_csv(grid_dir / "report-across.csv")
    assert set(across["scored_on"]) == {"B"} and (across["n_subjects"] == 3).all()
    per_fold = pd.read_csv(grid_dir / "report-per-fold.csv")
    assert set(per_fold["n_subjects"].dropna()) == {2}  # the paper's tables: the run's own test subjects only


def test_scoring_on_another_copy_of_octa500_leaves_out_the_subjects_the_run_trained_on(tmp_path, capsys):
    write_octa500(tmp_path / "release", "3M", n=6, seed=3, size=64, progress=False)
    write_folder(tmp_path / "copy", n=6, seed=3, size=64, layout="split", tasks=("FAZ",), progress=False)
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper", "--data", str(tmp_path / "release"), "--task", "FAZ", "--channels", "ILM_OPL", "--epochs", "1",
                 "--out", str(run), "--quiet"]) == 0
    split = json.loads((run / "standard" / "split.json").read_text())
    assert main(["evaluate", "--run", str(run), "--data", str(tmp_path / "copy"), "--fov-mm", "3"]) == 0
    assert "OCTA-500 subject(s) the run trained or validated on left out" in capsys.readouterr().out
    (path,) = (run / "standard").glob("results-all-on-copy-*.csv")
    scored = pd.read_csv(path)
    assert sorted(set(scored["id"].astype(int))) == split["test"]


def test_a_projection_folder_missing_a_subject_is_named_once(tmp_path):
    write_folder(tmp_path / "d", n=3, seed=0, size=48, projections=LAYERS, layout="subfolders", tasks=("FAZ",), progress=False)
    stem = sorted(p.stem for p in (tmp_path / "d" / "images" / "FULL").iterdir())[0]
    (tmp_path / "d" / "images" / "FULL" / f"{stem}.png").unlink()
    with pytest.raises(DatasetError) as caught:
        open_dataset(tmp_path / "d")
    assert len(caught.value.problems) == 1 and "images/FULL: no image with the stem" in caught.value.problems[0]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", ["01_data", "02_prompts", "03_finetune", "04_evaluate", "05_interactive", "06_predict"])
def test_the_chapters_take_a_folder_dataset_where_they_take_an_octa500_root(tmp_path, chapter):
    import os
    from pathlib import Path

    import papermill as pm

    write_folder(tmp_path / "mine", n=12, seed=3, size=128, fov_mm=3.0, projections=("ILM_OPL",), tasks=("FAZ", "RV"),
                 stems="name", progress=False)
    notebook = Path(__file__).resolve().parent.parent / "notebooks" / f"{chapter}.ipynb"
    env = {"SAMOCTA_DATA": str(tmp_path / "mine"), "SAMOCTA_WORKDIR": str(tmp_path / "work"), "SAMOCTA_EPOCHS": "2"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        pm.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), kernel_name="python3", cwd=str(tmp_path),
                            progress_bar=False)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    text = (tmp_path / "out.ipynb").read_text()
    assert "mine (folder dataset)" in text and '"output_type": "error"' not in text


def test_dataset_json_tasks_must_match_the_label_folders(folder):
    meta = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({**meta, "tasks": ["FAZ"]}))
    with pytest.raises(DatasetError, match=r"tasks \['FAZ'\] differ from the label folders' \['RV'\]"):
        open_dataset(folder)


def test_a_folder_dataset_beside_an_octa500_tree_is_read_as_itself(tmp_path):
    write_octa500(tmp_path, "3M", n=3, seed=0, size=48, progress=False)  # OCTA_3mm/ and Label/ in tmp_path
    write_folder(tmp_path / "ROSSA", n=3, seed=1, size=48, layout="split", progress=False)
    assert isinstance(open_dataset(tmp_path / "ROSSA"), FolderDataset)
    assert isinstance(open_dataset(tmp_path / "OCTA_3mm"), OCTA500) and isinstance(open_dataset(tmp_path), OCTA500)


# ----------------------------------------------------------------------------- layouts as published, data that lies (issue 37)


def test_rossa_as_published_reads_every_training_folder_and_says_what_it_skipped(tmp_path):
    write_folder(tmp_path / "r", n=8, seed=3, size=64, layout="split", progress=False)
    root = tmp_path / "r"
    # ROSSA ships its training images in two folders, train_manual/ and train_sam/
    (root / "train").rename(root / "train_manual")
    shutil.copytree(root / "train_manual", root / "train_sam")
    for folder in ("image", "label"):
        for path in (root / "train_sam" / folder).iterdir():
            path.rename(path.with_name("sam_" + path.name))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("x")
    index = open_dataset(root)
    split = index.own_split()
    manual = len(list((root / "train_manual" / "image").iterdir()))
    assert len(split.train) == 2 * manual and split.val and split.test
    assert len(index.ids) == len(split.train) + len(split.val) + len(split.test)
    assert any("notes: not a split folder" in note for note in index.stray)  # said, not silently ignored


def test_hidden_copies_and_files_that_are_no_files_are_never_read_as_scans(tmp_path, capsys):
    write_folder(tmp_path / "f", n=4, seed=1, size=64, progress=False)
    labels = tmp_path / "f" / "labels" / "RV"
    for path in list(labels.iterdir()) + list((tmp_path / "f" / "images").iterdir()):
        (path.parent / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    assert main(["check-data", str(tmp_path / "f")]) == 0  # macOS's ._ copies: hidden, skipped by every reader
    import os

    os.mkfifo(tmp_path / "f" / "images" / "zz.png")
    capsys.readouterr()
    assert main(["check-data", str(tmp_path / "f")]) == 1  # refused at once, never opened (a FIFO would block)
    assert "not a regular file" in capsys.readouterr().out


def test_labels_that_lie_inverted_or_swapped_are_refused_and_true_ones_pass(tmp_path, capsys):
    write_folder(tmp_path / "av", n=6, seed=2, projections=("OPL_BM", "ILM_OPL", "FULL"),
                 tasks=("Capillary", "Artery", "Vein"), progress=False)
    assert main(["check-data", str(tmp_path / "av")]) == 0
    shutil.copytree(tmp_path / "av", tmp_path / "swapped")
    labels = tmp_path / "swapped" / "labels"
    (labels / "Artery").rename(labels / "tmp")
    (labels / "Vein").rename(labels / "Artery")
    (labels / "tmp").rename(labels / "Vein")
    capsys.readouterr()
    assert main(["check-data", str(tmp_path / "swapped")]) == 1
    assert "look swapped" in capsys.readouterr().out
    shutil.copytree(tmp_path / "av", tmp_path / "inverted")
    for path in (tmp_path / "inverted" / "labels" / "Capillary").iterdir():
        write_grey(path, np.where(read_grey(path) > 0, 0, 255).astype(np.uint8))
    assert main(["check-data", str(tmp_path / "inverted")]) == 1
    assert "inverted" in capsys.readouterr().out


@pytest.mark.parametrize("size, suffix", [(48, ".png"), (304, ".jpg")])
def test_correctly_oriented_labels_pass_on_small_and_jpeg_images_and_rotated_ones_do_not(tmp_path, size, suffix):
    write_folder(tmp_path / "d", n=40, seed=0, size=size, tasks=("RV", "FAZ"), suffix=suffix, progress=False)
    assert not open_dataset(tmp_path / "d").validate()
    if size == 304:
        for path in (tmp_path / "d" / "labels" / "RV").iterdir():
            write_grey(path, np.rot90(read_grey(path)).copy())
        assert any("orientation disagrees" in p for p in open_dataset(tmp_path / "d").validate())
