from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from samocta.synth import make_sample  # noqa: E402
from samocta.viz import NEGATIVE, POSITIVE, show_mask, show_points, show_sample  # noqa: E402


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
    from samocta.viz import show_improvement

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
