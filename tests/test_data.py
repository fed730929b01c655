from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from trees import make_tree

from samocta.cli import main as cli_main
from samocta.data import (
    LAYERS,
    OCTA500,
    DatasetError,
    Split,
    kfold_split,
    orientation_scores,
    read_grey,
    standard_split,
    write_grey,
)


@pytest.mark.parametrize("layout", ["official", "samocta"])
@pytest.mark.parametrize("fov", ["3M", "6M"])
def test_both_layouts_load_with_paper_channel_order(tmp_path, layout, fov):
    written = make_tree(tmp_path / "OCTA-500", layout=layout, fov=fov)
    index = OCTA500(tmp_path / "OCTA-500", fov)
    assert index.layout == layout
    assert index.ids == sorted(written)
    assert index.tasks == ("RV", "FAZ", "Capillary", "Artery", "Vein")
    sid = index.ids[0]
    sample = index.load(sid)
    projections, labels = written[sid]
    assert sample.image.dtype == np.uint8 and sample.image.shape == (64, 64, 3)
    for c, layer in enumerate(LAYERS):  # OPL_BM, ILM_OPL, FULL
        np.testing.assert_array_equal(sample.image[..., c], projections[layer])
    for task, mask in labels.items():
        assert sample.labels[task].dtype == bool
        np.testing.assert_array_equal(sample.labels[task], mask)
    assert sample.fov == fov and sample.id == sid


def test_root_may_be_the_parent_or_the_fov_folder(tmp_path):
    make_tree(tmp_path / "datasets" / "OCTA-500", layout="samocta")
    by_parent = OCTA500(tmp_path / "datasets", "3M")
    by_fov_dir = OCTA500(tmp_path / "datasets" / "OCTA-500" / "OCTA_3M", "3M")
    assert by_parent.ids == by_fov_dir.ids == [10301, 10302, 10441, 10451]


def test_channels_are_a_parameter_one_projection_repeated_or_three(tmp_path):
    written = make_tree(tmp_path, layout="official")
    index = OCTA500(tmp_path, "3M", channels=("FULL", "ILM_OPL", "OPL_BM"))
    sample = index.load(10301)
    np.testing.assert_array_equal(sample.image[..., 0], written[10301][0]["FULL"])
    one = OCTA500(tmp_path, "3M", channels="ILM_OPL").load(10301).image
    for c in range(3):
        np.testing.assert_array_equal(one[..., c], written[10301][0]["ILM_OPL"])
    with pytest.raises(DatasetError, match="no CHOROID projection"):
        OCTA500(tmp_path, "3M", channels="CHOROID")
    with pytest.raises(DatasetError, match="one projection name"):
        OCTA500(tmp_path, "3M", channels="FULL,ILM_OPL")


def test_a_subset_of_projections_serves_a_run_that_uses_only_those(tmp_path):
    import shutil

    make_tree(tmp_path, layout="official")
    shutil.rmtree(tmp_path / "OCTA_3mm" / "Projection Maps" / "OCTA(OPL_BM)")
    shutil.rmtree(tmp_path / "OCTA_3mm" / "Projection Maps" / "OCTA(FULL)")
    index = OCTA500(tmp_path, "3M", channels="ILM_OPL")
    assert index.ids == [10301, 10302, 10441, 10451] and index.projections == ("ILM_OPL",)
    assert index.validate() == []  # vessel orientation judged on ILM_OPL when FULL is not there
    with pytest.raises(DatasetError, match="missing projection"):
        OCTA500(tmp_path, "3M").load(10301)


def test_palette_bmp_and_png_read_as_grey_values(tmp_path):
    written = make_tree(tmp_path / "a", palette=True)
    # a shuffled palette: raw indices differ from grey values, so reading indices would fail here
    sample = OCTA500(tmp_path / "a", "3M").load(10302)
    np.testing.assert_array_equal(sample.image[..., 2], written[10302][0]["FULL"])
    written = make_tree(tmp_path / "b", suffix=".png", layout="samocta")
    sample = OCTA500(tmp_path / "b", "3M").load(10302)
    np.testing.assert_array_equal(sample.image[..., 1], written[10302][0]["ILM_OPL"])


def test_write_grey_bmp_has_release_file_size(tmp_path):
    write_grey(tmp_path / "x.bmp", np.zeros((304, 304), np.uint8))
    # 54-byte header + 1,024-byte grey palette + 304 x 304 pixels, as in OCTA-500
    assert (tmp_path / "x.bmp").stat().st_size == 93_494
    assert read_grey(tmp_path / "x.bmp").shape == (304, 304)


def test_zero_one_labels_are_read_as_binary(tmp_path):
    written = make_tree(tmp_path, label_values=(0, 1))
    sample = OCTA500(tmp_path, "3M").load(10301)
    np.testing.assert_array_equal(sample.labels["RV"], written[10301][1]["RV"])


def test_fov_comes_from_id_ranges(tmp_path):
    make_tree(tmp_path, layout="official", fov="3M")
    make_tree(tmp_path, layout="official", fov="6M")  # shares the Label/ folder
    assert OCTA500(tmp_path, "3M").ids == [10301, 10302, 10441, 10451]
    assert OCTA500(tmp_path, "6M").ids == [10001, 10002, 10181, 10201]
    # a 6M id put among 3M projections is reported, not listed
    src = tmp_path / "OCTA_6mm" / "Projection Maps" / "OCTA(FULL)" / "10001.bmp"
    dst = tmp_path / "OCTA_3mm" / "Projection Maps" / "OCTA(FULL)" / "10001.bmp"
    dst.write_bytes(src.read_bytes())
    index = OCTA500(tmp_path, "3M")
    assert 10001 not in index.ids
    problems = index.validate()
    assert any(str(dst) in p and "belongs to 6M" in p for p in problems)


def test_absent_task_is_reported_not_a_crash(tmp_path):
    import shutil

    from samocta.train import SegmentationDataset

    make_tree(tmp_path, layout="official")
    shutil.rmtree(tmp_path / "Label" / "GT_Vein")
    index = OCTA500(tmp_path, "3M")
    assert index.missing_tasks == ("Vein",)
    assert "Vein" in index.summary() and "absent" in index.summary()
    assert index.validate() == []
    assert set(index.load(10301).labels) == {"RV", "FAZ", "Capillary", "Artery"}
    with pytest.raises(DatasetError, match="GT_Vein"):
        index.load(10301, tasks=["Vein"])
    with pytest.raises(DatasetError, match="task Vein has no labels"):
        SegmentationDataset(index, index.ids, "Vein")


def test_wrong_root_and_wrong_fov_name_what_is_expected(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as err:
        OCTA500(tmp_path / "nowhere", "3M")
    assert str(tmp_path / "nowhere") in str(err.value)
    make_tree(tmp_path, fov="3M")
    with pytest.raises(DatasetError, match=r"did you mean fov='3M'") as err:
        OCTA500(tmp_path, "6M")
    assert "OCTA_6mm/Projection Maps/OCTA(FULL)" in str(err.value)
    with pytest.raises(DatasetError, match="unknown field of view"):
        OCTA500(tmp_path, "9M")
    index = OCTA500(tmp_path, "3M")
    with pytest.raises(DatasetError, match="it is a 6M id"):
        index.load(10001)


def _problems_after(tmp_path, damage) -> list[str]:
    make_tree(tmp_path, layout="official")
    damage(tmp_path)
    index = OCTA500(tmp_path, "3M")
    problems = index.validate()
    with pytest.raises(DatasetError) as err:
        index.load(10302)
    assert err.value.problems == [p for p in problems if "10302" in p]
    return problems


def test_missing_projection_and_label_are_listed_by_path(tmp_path):
    full = tmp_path / "OCTA_3mm" / "Projection Maps" / "OCTA(FULL)" / "10302.bmp"
    cap = tmp_path / "Label" / "GT_Capillary" / "10302.bmp"
    problems = _problems_after(tmp_path, lambda r: (full.unlink(), cap.unlink()))
    assert f"missing projection: {full}" in problems
    assert f"missing label: {cap}" in problems


def test_corrupt_bmp_is_unreadable_not_a_pil_traceback(tmp_path):
    bad = tmp_path / "OCTA_3mm" / "Projection Maps" / "OCTA(ILM_OPL)" / "10302.bmp"
    problems = _problems_after(tmp_path, lambda r: bad.write_bytes(b"BM\x00\x01garbage"))
    assert any(p.startswith(f"{bad}: unreadable image") for p in problems)


def test_size_mismatch_is_reported(tmp_path):
    lab = tmp_path / "Label" / "GT_FAZ" / "10302.bmp"
    problems = _problems_after(tmp_path, lambda r: write_grey(lab, np.zeros((32, 64), np.uint8)))
    assert any(str(lab) in p and "label size (32, 64) differs" in p for p in problems)


def test_non_binary_label_values_are_reported(tmp_path):
    lab = tmp_path / "Label" / "GT_Artery" / "10302.bmp"

    def damage(_):
        a = read_grey(lab)
        a[0, :3] = (1, 2, 128)
        write_grey(lab, a)

    problems = _problems_after(tmp_path, damage)
    assert any(str(lab) in p and "outside {0, 255}" in p for p in problems)


def test_rotated_label_is_caught_by_the_orientation_check(tmp_path):
    lab = tmp_path / "Label" / "GT_LargeVessel" / "10302.bmp"
    problems = _problems_after(tmp_path, lambda r: write_grey(lab, np.rot90(read_grey(lab)).copy()))
    assert any(str(lab) in p and "orientation" in p and "rot270" in p for p in problems)
    # switching the check off loads it anyway
    assert OCTA500(tmp_path, "3M").load(10302, check_orientation=False).labels["RV"].shape == (64, 64)


def test_orientation_scores_pick_identity_on_aligned_data():
    from trees import toy_sample

    projections, labels = toy_sample(5, 64)
    scores = orientation_scores(projections["FULL"], labels["RV"])
    assert len(scores) == 8
    assert max(scores, key=scores.get) == "identity"
    assert scores["identity"] > 0.5
    rect = orientation_scores(np.zeros((4, 6)), np.ones((4, 6), bool))
    assert set(rect) == {"identity", "rot180", "flip", "rot180+flip"}  # shape-preserving only


def test_check_data_cli_exit_codes(tmp_path, capsys):
    make_tree(tmp_path / "good", layout="samocta")
    assert cli_main(["check-data", str(tmp_path / "good"), "--fov", "3M"]) == 0
    out = capsys.readouterr().out
    assert "ids: 4 (10301-10451)" in out and "no problems found" in out
    make_tree(tmp_path / "bad", layout="official")
    missing = tmp_path / "bad" / "Label" / "GT_FAZ" / "10441.bmp"
    missing.unlink()
    assert cli_main(["check-data", str(tmp_path / "bad"), "--fov", "3M"]) == 1
    assert f"missing label: {missing}" in capsys.readouterr().out
    assert cli_main(["check-data", str(tmp_path / "bad"), "--fov", "6M"]) == 1
    assert "did you mean fov='3M'" in capsys.readouterr().err


def test_check_data_as_a_process(tmp_path):
    make_tree(tmp_path, layout="official")
    run = subprocess.run(
        [sys.executable, "-m", "samocta", "check-data", str(tmp_path), "--fov", "3M"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "official layout" in run.stdout


# ---------------------------------------------------------------- splits


@pytest.mark.parametrize("fov, sizes", [("3M", (140, 10, 50)), ("6M", (180, 20, 100))])
def test_standard_split(fov, sizes):
    split = standard_split(fov)
    assert (len(split.train), len(split.val), len(split.test)) == sizes
    parts = [set(split.train), set(split.val), set(split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert max(split.train) < min(split.val) <= max(split.val) < min(split.test)
    restricted = standard_split(fov, available=[split.train[0], split.test[-1], 1])
    assert restricted.train == [split.train[0]] and restricted.val == [] and restricted.test == [split.test[-1]]


def test_kfold_split_is_seeded_disjoint_and_covering():
    ids = list(range(10301, 10501))
    folds = kfold_split(ids, k=10, seed=0)
    assert len(folds) == 10
    vals = [set(f.val) for f in folds]
    assert set().union(*vals) == set(ids)
    assert sum(len(v) for v in vals) == len(ids)
    for f in folds:
        assert set(f.train) == set(ids) - set(f.val) and len(f.val) == 20 and f.test == []
    assert [f.val for f in kfold_split(ids, 10, 0)] == [f.val for f in folds]
    assert [f.val for f in kfold_split(ids, 10, 1)] != [f.val for f in folds]
    uneven = kfold_split(range(23), k=5)
    assert sorted(len(f.val) for f in uneven) == [4, 4, 5, 5, 5]
    with pytest.raises(DatasetError, match="2 <= k"):
        kfold_split([1, 2, 3], k=4)


def test_split_json_round_trip(tmp_path):
    split = kfold_split(range(10001, 10301), k=10, seed=3)[4]
    split.to_json(tmp_path / "split.json")
    assert Split.from_json(tmp_path / "split.json") == split
    assert json.loads((tmp_path / "split.json").read_text())["name"] == "kfold10-seed3-fold4"
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DatasetError, match="not a split file"):
        Split.from_json(tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="missing split file"):
        Split.from_json(tmp_path / "none.json")


# ---------------------------------------------------------------- dataset and augmentation


def _positive_points(mask, rng, labels=None):
    """A minimal prompt function: two points inside the mask."""
    from types import SimpleNamespace

    rows, cols = np.nonzero(mask)
    pick = rng.integers(0, len(rows), 2)
    return SimpleNamespace(coords=np.stack([cols[pick] + 0.5, rows[pick] + 0.5], 1), target=None)


def test_horizontal_flip_moves_image_masks_and_points_together():
    import albumentations as A
    from trees import toy_sample

    from samocta.data import augment_sample

    projections, labels = toy_sample(1, 64)
    image = np.stack([projections[l] for l in LAYERS], -1)
    flip = A.Compose([A.HorizontalFlip(p=1)], keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))
    rows, cols = np.nonzero(labels["Vein"])
    points = np.stack([cols[:5] + 0.5, rows[:5] + 0.5], 1)
    img2, masks2, pts2 = augment_sample(flip, image, labels, points, seed=0)
    np.testing.assert_array_equal(img2, image[:, ::-1])
    for task in labels:
        np.testing.assert_array_equal(masks2[task], labels[task][:, ::-1])
    np.testing.assert_allclose(pts2, np.stack([64 - points[:, 0], points[:, 1]], 1))
    assert masks2["Vein"][(pts2[:, 1] - 0.5).astype(int), (pts2[:, 0] - 0.5).astype(int)].all()


@pytest.mark.parametrize("preset", ["paper", "reference_code"])
def test_dataset_augments_jointly_and_prompts_follow_the_augmented_target(tmp_path, preset):
    from samocta.train import SegmentationDataset

    make_tree(tmp_path, size=96)
    index = OCTA500(tmp_path, "3M")
    ds = SegmentationDataset(index, index.ids, "RV", prompt_fn=_positive_points, augment=preset, seed=7)
    changed = 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            plain = ds.sample(item["id"])
            changed += not np.array_equal(item["mask"], plain.labels["RV"])
            ilm = item["image"][..., 1].astype(float)
            # vessels are bright in the toy image: the augmented mask must still sit on them
            assert ilm[item["mask"]].mean() > ilm[~item["mask"]].mean() + 40
            pts = item["prompt"].coords
            assert item["mask"][(pts[:, 1] - 0.5).astype(int), (pts[:, 0] - 0.5).astype(int)].all()
            for task, mask in item["labels"].items():
                assert mask.shape == item["mask"].shape
    assert changed > 0  # the geometric transforms really ran


def test_dataset_items_replay_per_epoch(tmp_path):
    from samocta.train import SegmentationDataset

    make_tree(tmp_path)
    index = OCTA500(tmp_path, "3M")
    a = SegmentationDataset(index, index.ids, "Artery", prompt_fn=_positive_points, augment=True, seed=1)
    b = SegmentationDataset(index, index.ids, "Artery", prompt_fn=_positive_points, augment=True, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x["image"].tobytes() == y["image"].tobytes()
        assert x["prompt"].coords.tobytes() == y["prompt"].coords.tobytes()
    fixed = SegmentationDataset(index, index.ids, "Artery", prompt_fn=_positive_points, fixed_prompts=True)
    first = fixed[0]["prompt"].coords
    fixed.set_epoch(9)
    np.testing.assert_array_equal(fixed[0]["prompt"].coords, first)
    with pytest.raises(DatasetError, match="not in OCTA-500 3M at"):
        SegmentationDataset(index, [10499], "RV")
