from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from samocta.metrics import column_label  # noqa: E402
from samocta.model import build_sam  # noqa: E402
from samocta.reader import loss_figure, method_figure, show_mask, show_points, show_sample, show_table  # noqa: E402
from samocta.reader.viz import NEGATIVE, POSITIVE  # noqa: E402
from samocta.synth import make_sample  # noqa: E402


def test_show_points_positions_and_colours():
    fig, ax = plt.subplots()
    ax.imshow(np.zeros((10, 10)))
    coords = np.array([[2.5, 3.5], [7.5, 1.5], [0.5, 0.5]], np.float32)
    artists = show_points(coords, np.array([1, 0, -1]), ax)
    assert len(artists) == 2  # padding (-1) is not drawn
    pos, neg = artists
    # imshow centres pixel i at i; the project at i + 0.5
    np.testing.assert_allclose(pos.get_offsets(), [[2.0, 3.0]])
    np.testing.assert_allclose(neg.get_offsets(), [[7.0, 1.0]])
    assert tuple(pos.get_facecolor()[0]) == to_rgba(POSITIVE)
    assert tuple(neg.get_facecolor()[0]) == to_rgba(NEGATIVE)
    assert pos.get_paths() and all(a.axes is ax for a in artists)
    plt.close(fig)


def test_show_mask_is_transparent_off_the_mask():
    fig, ax = plt.subplots()
    mask = np.zeros((6, 6), bool)
    mask[1:3, 2:5] = True
    rgba = show_mask(mask, ax, color=(1.0, 0.0, 0.0), alpha=0.5).get_array()
    assert rgba.shape == (6, 6, 4)
    np.testing.assert_allclose(rgba[mask][:, 3], 0.5)
    np.testing.assert_allclose(rgba[~mask][:, 3], 0.0)
    plt.close(fig)


def test_show_sample_has_layers_then_labels():
    fig = show_sample(make_sample("3M", 0, 64), title="x")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["OPL_BM", "ILM_OPL", "FULL", "RV", "FAZ", "Capillary", "Artery", "Vein"]
    plt.close(fig)


def test_show_improvement_points_at_the_gained_region():
    from samocta.reader import show_improvement

    target = np.zeros((40, 40), bool)
    target[5:15, 25:35] = True
    before = np.zeros_like(target)
    after = target.copy()
    fig, ax = plt.subplots()
    ax.imshow(target)
    assert show_improvement(ax, before, after, target)
    arrow = ax.texts[-1] if ax.texts else ax.patches[-1]
    np.testing.assert_allclose(arrow.xy, (29.5, 9.5))  # the region's centre (x, y)
    assert not show_improvement(ax, after, after, target)  # nothing gained, no arrow
    plt.close(fig)


def test_method_figure_counts_come_from_the_model():
    fig = method_figure("vit_h")
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "32 blocks" in text and "655,360 trainable" in text  # vit_h: 32 x 2 x (4 x 1280 + 1280 x 4)
    plt.close(fig)
    fig = method_figure("tiny", rank=2)
    tiny = build_sam("tiny")
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    dim = tiny.image_encoder.blocks[0].attn.qkv.in_features
    blocks = len(tiny.image_encoder.blocks)
    assert f"{blocks} blocks" in text and f"{blocks * 2 * 2 * 2 * dim:,} trainable" in text
    plt.close(fig)


def test_loss_figure_shows_what_cldice_rewards():
    fig, scores = loss_figure()
    plt.close(fig)
    broken, thick = scores["broken"], scores["too thick"]
    assert broken["clDice"] < broken["Dice"] - 0.05  # breaks in thin vessels cost clDice more
    assert thick["clDice"] > 0.99 and thick["Dice"] < 0.8  # width costs Dice, not clDice


def test_tables_show_a_dash_not_nan_and_scroll_in_their_own_box():
    df = pd.DataFrame({"hd95": [1.23456, np.nan], "n_subjects": [3, 2]}).rename(columns=column_label)
    html = show_table(df, missing_means="no value").data
    assert "nan" not in html.lower() and "–" in html and "–: no value." in html
    assert 'overflow-x: auto' in html and "HD95 (px)" in html and "subjects scored" in html and "1.235" in html
    assert "samocta-table-note" not in show_table(df.fillna(0)).data
    assert column_label("dice_std") == "Dice, std" and column_label("hd95_n") == "HD95 (px), subjects with a value"
