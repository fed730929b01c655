"""Clinical measurements on shapes whose values are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import disk, line

from samocta.errors import InputError
from samocta.measure import faz_measures, measure, skeleton_length, vessel_measures


@pytest.mark.parametrize("radius", [20, 60, 120])
def test_a_disk_has_the_area_perimeter_and_circularity_of_a_disk(radius):
    mask = np.zeros((400, 400), bool)
    mask[disk((200, 200), radius, shape=mask.shape)] = True
    pixel_um = 15.0  # 6M: 6 mm over 400 px
    m = faz_measures(mask, pixel_um)
    r_mm = radius * pixel_um / 1000
    assert m["faz_area_mm2"] == pytest.approx(math.pi * r_mm**2, rel=0.02)
    assert m["faz_perimeter_mm"] == pytest.approx(2 * math.pi * r_mm, rel=0.015)
    assert m["faz_circularity"] == pytest.approx(1.0, abs=0.04)


def test_a_square_is_less_circular_and_only_the_largest_region_counts():
    mask = np.zeros((304, 304), bool)
    mask[100:200, 100:200] = True
    mask[10:13, 10:13] = True  # a speck elsewhere is not the FAZ
    m = faz_measures(mask, 3000 / 304)
    side_mm = 100 * 3 / 304
    assert m["faz_area_mm2"] == pytest.approx(side_mm**2, rel=1e-9)
    # pi / 4 for a true square; the Crofton perimeter reads a grid-aligned edge about 5 % short
    assert math.pi / 4 < m["faz_circularity"] < 0.9
    assert all(np.isnan(v) for v in faz_measures(np.zeros((8, 8), bool), 10).values())


@pytest.mark.parametrize("n", [2, 50, 199])
def test_skeleton_length_counts_steps_straight_and_diagonal(n):
    straight = np.zeros((210, 210), bool)
    straight[5, 5 : 5 + n] = True
    assert skeleton_length(straight) == pytest.approx(n - 1)
    diagonal = np.zeros((210, 210), bool)
    rr, cc = line(3, 3, 3 + n - 1, 3 + n - 1)
    diagonal[rr, cc] = True
    assert skeleton_length(diagonal) == pytest.approx(math.sqrt(2) * (n - 1))
    corner = np.zeros((10, 10), bool)
    corner[2, 2:6] = True
    corner[2:6, 5] = True  # an L: 3 + 3 steps, the corner not counted twice
    assert skeleton_length(corner) == pytest.approx(6)


@pytest.mark.parametrize("angle", ["horizontal", "diagonal"])
def test_a_straight_bar_has_its_density_length_and_width(angle):
    size, length, width, pixel_um = 304, 200, 6, 3000 / 304
    mask = np.zeros((size, size), bool)
    if angle == "horizontal":
        mask[150 : 150 + width, 50 : 50 + length] = True
        true_length = length
    else:
        for k in range(width):  # a diagonal band: perpendicular width k / sqrt(2) per offset
            rr, cc = line(40, 40 + k, 40 + length - 1, 40 + length - 1 + k)
            mask[rr, cc] = True
        true_length = math.sqrt(2) * length
        width = width / math.sqrt(2)
    m = vessel_measures(mask, pixel_um)
    assert m["area_density_pct"] == pytest.approx(100 * mask.mean())
    image_mm2 = (size * pixel_um / 1000) ** 2
    # thinning shortens each end by about half a width
    assert m["skeleton_density_mm_per_mm2"] * image_mm2 == pytest.approx(true_length * pixel_um / 1000, rel=0.06)
    assert m["mean_width_um"] == pytest.approx(width * pixel_um, rel=0.08)


def test_measure_takes_the_pixel_size_from_the_field_of_view():
    mask = np.zeros((304, 304), bool)
    mask[100:200, 100:200] = True
    assert measure(mask, "FAZ", "3M")["faz_area_mm2"] == pytest.approx((100 * 3 / 304) ** 2)
    big = np.zeros((400, 400), bool)
    big[100:200, 100:200] = True
    assert measure(big, "FAZ", "6M")["faz_area_mm2"] == pytest.approx((100 * 6 / 400) ** 2)
    assert set(measure(mask, "RV", "3M")) == {"area_density_pct", "skeleton_density_mm_per_mm2", "mean_width_um"}
    with pytest.raises(InputError, match="unknown task"):
        measure(mask, "Macula", "3M")
    with pytest.raises(InputError, match="NaN"):
        measure(np.full((8, 8), np.nan), "RV", "3M")
