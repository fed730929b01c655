from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from samocta.model.frame import from_model_frame, resized_shape, to_model_frame
from samocta.prompts import (
    Prompt,
    PromptError,
    PromptSpec,
    collate_prompts,
    evaluation_prompt,
    global_points,
    local_points,
)

EIGHT = np.ones((3, 3), bool)


def _pixels(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of (x, y) pixel-centre points; asserts they are pixel centres."""
    np.testing.assert_array_equal(coords % 1, 0.5)
    return (coords[:, 1] - 0.5).astype(int), (coords[:, 0] - 0.5).astype(int)


def _components(mask):
    lab, k = ndimage.label(mask, EIGHT)
    return lab, k


def _chessboard_to_each(lab, k):
    """(k, H, W) chessboard distance of every pixel to every component (brute force, per component)."""
    return np.stack([ndimage.distance_transform_cdt(lab != i, metric="chessboard") for i in range(1, k + 1)])


SPECIAL = [
    np.zeros((12, 12), bool),
    np.ones((12, 12), bool),
    np.pad(np.ones((1, 1), bool), 5),
    np.kron(np.eye(6, dtype=bool), np.ones((1, 1), bool)) | np.eye(6, dtype=bool)[::-1],
    (np.indices((17, 17)).sum(0) % 4 == 0) & (np.indices((17, 17))[0] % 2 == 0),  # many isolated pixels
]

masks = st.one_of(
    st.sampled_from(SPECIAL),
    arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=st.booleans()),
    arrays(bool, st.tuples(st.integers(8, 24), st.integers(8, 24)), elements=st.sampled_from([False] * 7 + [True])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=masks, n_pos=st.integers(0, 3), n_neg=st.integers(0, 3), seed=st.integers(0, 2**16), d_out=st.integers(1, 4))
def test_global_points_properties(mask, n_pos, n_neg, seed, d_out):
    band = (1, d_out)
    p = global_points(mask, n_pos, n_neg, np.random.default_rng(seed), band=band)
    assert p.coords.dtype == np.float32 and p.coords.shape == (len(p), 2) and p.labels.dtype == np.int64
    np.testing.assert_array_equal(p.target, mask)
    lab, k = _components(mask)
    pos, neg = p.coords[p.labels == 1], p.coords[p.labels == 0]
    pr, pc = _pixels(pos)
    assert mask[pr, pc].all(), "positives inside the target"
    assert len(set(zip(pr, pc))) == len(pr), "positives are distinct"
    sizes = np.bincount(lab.ravel(), minlength=k + 1)[1:]
    assert len(pos) == np.minimum(sizes, n_pos).sum(), "exact positive count"
    for i in range(1, k + 1):
        assert (lab[pr, pc] == i).sum() == min(n_pos, sizes[i - 1])
    nr, nc = _pixels(neg)
    assert not mask[nr, nc].any(), "negatives never on foreground"
    if k:
        dist = _chessboard_to_each(lab, k)
        dmin = dist.min(0)
        assert ((dmin[nr, nc] >= 1) & (dmin[nr, nc] <= d_out)).all(), "negatives in the band"
        # counts: component i owns the band pixels where it is the unique nearest; ties may go either way
        in_band = ~mask & (dmin >= 1) & (dmin <= d_out)
        nearest = dist == dmin
        unique = nearest.sum(0) == 1
        low = sum(min(n_neg, int((in_band & unique & nearest[i]).sum())) for i in range(k))
        high = sum(min(n_neg, int((in_band & nearest[i]).sum())) for i in range(k))
        assert low <= len(neg) <= high
    else:
        assert len(p) == 0
    again = global_points(mask, n_pos, n_neg, np.random.default_rng(seed), band=band)
    assert again.coords.tobytes() == p.coords.tobytes() and again.labels.tobytes() == p.labels.tobytes()


def test_negatives_avoid_pixels_nearer_to_another_component():
    mask = np.zeros((9, 30), bool)
    mask[4, 2:12] = True
    mask[4, 15:28] = True  # a gap of 3 px: the pixels between are contested
    lab, k = _components(mask)
    dist = _chessboard_to_each(lab, k)
    in_band = ~mask & (dist.min(0) >= 1) & (dist.min(0) <= 3)
    # ask for more negatives than any band holds: every band pixel is drawn, grouped by component
    p = global_points(mask, 0, 1000, np.random.default_rng(0), band=(1, 3))
    r, c = _pixels(p.coords)
    assert len(set(zip(r, c))) == len(r) == in_band.sum()  # each band pixel serves one component only
    side = np.sign(dist[0][r, c] - dist[1][r, c])  # -1 nearer the left component, +1 nearer the right
    strict = side[side != 0]
    assert (np.diff(strict) >= 0).all() and strict[0] == -1 and strict[-1] == 1, "left band first, then right"
    assert len(global_points(mask, 0, 5, np.random.default_rng(0)).labels) == 10


def test_more_than_255_components_are_all_prompted():
    mask = np.zeros((64, 64), bool)
    mask[::3, ::3] = True  # 484 isolated pixels: a uint8 label map would wrap
    p = global_points(mask, 1, 1, np.random.default_rng(0), band=(1, 1))
    assert p.n_pos == 484
    r, c = _pixels(p.coords[p.labels == 1])
    assert len(set(zip(r, c))) == 484


def test_min_area_and_total_budget():
    mask = np.zeros((40, 40), bool)
    mask[5:15, 5:15] = True  # 100 px
    mask[30, 30] = True  # 1 px
    p = global_points(mask, 2, 2, np.random.default_rng(0), min_area=20)
    assert p.n_pos == 2 and p.n_neg == 2 and p.target[30, 30]
    assert not global_points(mask, 2, 2, np.random.default_rng(0), min_area=20, drop_small=True).target[30, 30]
    filled = global_points(mask, 1, 1, np.random.default_rng(0), total=30)
    assert len(filled) == 30 and filled.n_pos == 2
    r, c = _pixels(filled.coords[filled.labels == 0])
    assert not mask[r, c].any() and len(set(zip(r, c))) == 28
    capped = global_points(mask, 3, 3, np.random.default_rng(0), total=4)
    assert len(capped) == 4 and capped.n_pos == 4
    none_eligible = global_points(mask, 1, 1, np.random.default_rng(0), min_area=1000)
    assert len(none_eligible) == 0 and none_eligible.target.sum() == 101


def test_edge_cases_never_raise_and_are_documented():
    rng = np.random.default_rng(0)
    empty = np.zeros((10, 10), bool)
    for p in (global_points(empty, 2, 2, rng), local_points(empty, 2, 2, rng), local_points(empty, 2, 2, rng, other=empty)):
        assert len(p) == 0 and not p.target.any()
    full = np.ones((10, 10), bool)
    g = global_points(full, 3, 3, rng)
    assert g.n_pos == 3 and g.n_neg == 0  # no band pixels: positives only
    one = np.zeros((5, 5), bool)
    one[2, 2] = True
    assert local_points(one, 2, 2, rng).n_pos == 1  # a 1-px component gives its one pixel
    with pytest.raises(PromptError, match="2-D"):
        global_points(np.zeros((2, 3, 4), bool), 1, 1, rng)
    with pytest.raises(PromptError, match="non-negative"):
        global_points(full, -1, 1, rng)
    with pytest.raises(PromptError, match="band"):
        global_points(full, 1, 1, rng, band=(3, 1))
    with pytest.raises(PromptError, match="choose"):
        local_points(full, 1, 1, rng, choose="largest")
    with pytest.raises(PromptError, match="shape"):
        local_points(full, 1, 1, rng, other=np.zeros((3, 3), bool))
    with pytest.raises(PromptError, match="mode"):
        PromptSpec("everywhere")


def _two_vessels():
    artery = np.zeros((40, 40), bool)
    vein = np.zeros((40, 40), bool)
    artery[10, 2:38] = True  # component 1: a long artery
    artery[30:33, 30:33] = True  # component 2: a small one
    vein[13, 2:38] = True  # a vein running 3 px below the long artery
    vein[5:36, 20] = True  # and one crossing it
    return artery, vein


@pytest.mark.parametrize("seed", range(10))
def test_local_points_target_one_component_with_background_and_cross_negatives(seed):
    artery, vein = _two_vessels()
    rng = np.random.default_rng(seed)
    p = local_points(artery, 2, 2, rng, other=vein, n_cross=3, cross_radius=4)
    lab, k = _components(artery)
    ids = np.unique(lab[p.target])
    assert ids.size == 1 and ids[0] > 0 and (p.target == (lab == ids[0])).all(), "target is one whole component"
    pos, neg = p.coords[p.labels == 1], p.coords[p.labels == 0]
    r, c = _pixels(pos)
    assert p.target[r, c].all() and len(pos) == 2
    r, c = _pixels(neg)
    assert len(neg) == 5 and not artery[r, c].any()
    cross = (r[2:], c[2:])  # after the 2 background negatives
    assert (vein & ~artery)[cross].all(), "cross negatives on vein-only pixels"
    dist = ndimage.distance_transform_edt(~p.target)
    if ids[0] == lab[10, 5]:  # the long artery: the parallel vein is within 4 px
        assert (dist[cross] <= 4).all()
    else:  # the small one: no vein within 4 px, so the nearest vein pixels are used
        assert dist[cross].max() <= np.sort(dist[vein & ~artery])[2] + 1e-9
    again = local_points(artery, 2, 2, np.random.default_rng(seed), other=vein, n_cross=3, cross_radius=4)
    assert again.coords.tobytes() == p.coords.tobytes()


def test_local_points_without_other_and_the_choice_rule():
    mask = np.zeros((30, 30), bool)
    mask[2:12, 2:12] = True  # 100 px
    mask[20, 20] = True  # 1 px
    big = sum(local_points(mask, 1, 1, np.random.default_rng(s)).target[5, 5] for s in range(300))
    assert big > 280  # area-weighted: 100 / 101
    uniform = sum(local_points(mask, 1, 1, np.random.default_rng(s), choose="uniform").target[5, 5] for s in range(300))
    assert 110 < uniform < 190
    assert not local_points(mask, 1, 1, np.random.default_rng(0), min_area=2).target[20, 20]
    p = local_points(mask, 2, 2, np.random.default_rng(1))
    assert p.n_pos + p.n_neg == len(p) <= 4 and set(p.labels) <= {0, 1}


@pytest.mark.parametrize("size", [304, 400])
def test_coordinate_round_trip_and_pixel_centres(size):
    ys, xs = np.mgrid[0:size, 0:size]
    pts = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1).astype(np.float32)
    model = to_model_frame(pts, (size, size))
    np.testing.assert_allclose(from_model_frame(model, (size, size)), pts, atol=1e-3)
    assert resized_shape((size, size)) == (1024, 1024)
    # SAM adds 0.5 before encoding: a pixel centre must land at the centre of its resized region
    np.testing.assert_allclose(model + 0.5, pts * 1024 / size, atol=1e-3)
    assert model.min() > 0 and model.max() < 1024
    # non-square: the longest side drives the scale
    assert resized_shape((300, 400)) == (768, 1024)
    np.testing.assert_allclose(to_model_frame(np.array([[400.0, 300.0]]), (300, 400)), [[1023.5, 767.5]])


def test_collate_pads_with_not_a_point():
    rng = np.random.default_rng(0)
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    prompts = [
        Prompt(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), mask),
        global_points(mask, 2, 1, rng),
        global_points(mask, 3, 2, rng),
    ]
    coords, labels = collate_prompts(prompts)
    assert coords.shape == (3, 5, 2) and labels.shape == (3, 5)
    np.testing.assert_array_equal(labels[0], -1)
    np.testing.assert_array_equal(labels[1, :3], prompts[1].labels)
    np.testing.assert_array_equal(labels[1, 3:], -1)
    np.testing.assert_array_equal(coords[2], prompts[2].coords)
    assert collate_prompts(prompts, pad_to=8)[1].shape == (3, 8)
    with pytest.raises(PromptError, match="pad_to"):
        collate_prompts(prompts, pad_to=4)
    assert collate_prompts([prompts[0]])[0].shape == (1, 0, 2)


def test_prompt_spec_and_fixed_evaluation_prompts():
    artery, vein = _two_vessels()
    labels = {"Artery": artery, "Vein": vein}
    spec = PromptSpec.paper("Artery", "local")
    assert (spec.n_pos, spec.n_neg) == (2, 2)
    p1 = evaluation_prompt(spec, 10301, artery, labels, seed=0)
    p2 = evaluation_prompt(spec, 10301, artery, labels, seed=0)
    p3 = evaluation_prompt(spec, 10302, artery, labels, seed=0)
    assert p1.coords.tobytes() == p2.coords.tobytes()
    assert len(p1) == 6  # 2 positives, 2 background and 2 cross negatives
    assert p1.coords.tobytes() != p3.coords.tobytes()  # another subject, another draw
    none = PromptSpec.paper("RV", "none")(artery, np.random.default_rng(0))
    assert len(none) == 0 and (none.target == artery).all()
    no_cross = PromptSpec("local", 2, 2, task="Artery", n_cross=0)(artery, np.random.default_rng(0), labels=labels)
    assert len(no_cross) == 4
    assert PromptSpec.paper("FAZ").to_dict()["mode"] == "global"


def test_prompts_on_synthetic_samples_every_task():
    from samocta.data import TASKS
    from samocta.synth import make_sample

    for seed in range(3):
        sample = make_sample("3M", seed, 128)
        for task in TASKS:
            mask = sample.labels[task]
            g = PromptSpec.paper(task, "global")(mask, np.random.default_rng(seed), sample.labels)
            loc = PromptSpec.paper(task, "local")(mask, np.random.default_rng(seed), sample.labels)
            for p in (g, loc):
                r, c = _pixels(p.coords[p.labels == 1])
                assert p.n_pos >= 1 and p.target[r, c].all()
                r, c = _pixels(p.coords[p.labels == 0])
                assert not mask[r, c].any()
            if task in ("Artery", "Vein"):
                other = sample.labels["Vein" if task == "Artery" else "Artery"]
                r, c = _pixels(loc.coords[loc.labels == 0][2:])
                assert len(r) == 2 and (other & ~mask)[r, c].all()
