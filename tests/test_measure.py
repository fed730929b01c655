"""Clinical measurements on shapes whose values are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import disk, line

from samocta.core.errors import InputError
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


# ----------------------------------------------------------------------------- regional measurements (issue 38)

from samocta.measure.regional import (  # noqa: E402
    box_counting_dimension,
    eye_of,
    faz_shape,
    fd300,
    place_grid,
    regional_density,
    regional_measures,
)


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.hypot(xx + 0.5 - centre[0], yy + 0.5 - centre[1]) < radius


def test_a_uniform_texture_reads_equal_sectors_and_the_eye_names_them():
    texture = np.random.default_rng(0).random((400, 400)) < 0.3
    grid = place_grid(texture.shape, 6000 / 400, eye="OD")  # 6 x 6 mm: the perifoveal ring too
    values = regional_density(texture, grid)
    sectors = [v for k, v in values.items()
               if k.startswith(("density_inner_", "density_outer_")) and k not in ("density_inner_pct", "density_outer_pct")]
    assert len(sectors) == 8 and max(sectors) - min(sectors) < 2.5 and abs(np.mean(sectors) - 30) < 1
    # OD: the nasal side is the image's right; OS: its left
    right_half = np.zeros((400, 400), bool)
    right_half[:, 200:] = True
    od = regional_density(right_half, place_grid(right_half.shape, 15.0, eye="OD"))
    os_ = regional_density(right_half, place_grid(right_half.shape, 15.0, eye="OS"))
    assert od["density_inner_nasal_pct"] == 100 and od["density_inner_temporal_pct"] == 0
    assert os_["density_inner_temporal_pct"] == 100 and os_["density_inner_nasal_pct"] == 0
    unknown = regional_density(right_half, place_grid(right_half.shape, 15.0))
    assert unknown["density_inner_right_pct"] == 100 and "density_inner_nasal_pct" not in unknown
    # a 3 x 3 mm scan holds the centre and the parafoveal ring, not the perifoveal one
    small = regional_density(texture[:304, :304], place_grid((304, 304), 3000 / 304))
    assert "density_inner_superior_pct" in small and not any(k.startswith("density_outer") for k in small)
    assert eye_of("scan_0001_OD") == "OD" and eye_of("12-os") == "OS" and eye_of("10301") is None


def test_the_grid_sits_on_the_faz_centroid_when_there_is_one():
    faz = _disk((304, 304), (120.5, 170.5), 25)
    grid = place_grid(faz.shape, 3000 / 304, faz)
    assert grid.centred_on == "FAZ centroid" and np.allclose(grid.centre, (120.5, 170.5), atol=0.05)
    assert place_grid(faz.shape, 3000 / 304).centre == (152.0, 152.0)


def test_fractal_dimensions_of_shapes_whose_answer_is_known():
    assert box_counting_dimension(np.ones((256, 256), bool)) == pytest.approx(2.0, abs=1e-9)
    line = np.zeros((256, 256), bool)
    line[100, :] = True
    assert box_counting_dimension(line) == pytest.approx(1.0, abs=1e-9)
    carpet = np.ones((1, 1), bool)
    for _ in range(5):
        hole = np.zeros_like(carpet)
        carpet = np.block([[carpet, carpet, carpet], [carpet, hole, carpet], [carpet, carpet, carpet]])
    assert box_counting_dimension(carpet, [3**k for k in range(5)]) == pytest.approx(np.log(8) / np.log(3), abs=1e-6)
    assert np.isnan(box_counting_dimension(np.zeros((64, 64), bool)))


def test_fd300_of_a_ring_of_known_width_and_the_faz_shape():
    pixel_um = 2.0  # fine pixels: the band's discretisation stays small
    shape = (1200, 1200)
    faz = _disk(shape, (600, 600), 250 / pixel_um)
    vessels = _disk(shape, (600, 600), 400 / pixel_um) & ~faz  # every pixel of the 0-150 µm band, none beyond
    expected = 100 * (400**2 - 250**2) / (550**2 - 250**2)
    assert fd300(vessels, faz, pixel_um) == pytest.approx(expected, abs=0.5)
    disk = faz_shape(faz, pixel_um)
    assert disk["faz_axis_ratio"] == pytest.approx(1, abs=0.01) and disk["faz_acircularity"] == pytest.approx(1, abs=0.02)
    yy, xx = np.mgrid[0:400, 0:400]
    ellipse = ((xx - 200) / 120) ** 2 + ((yy - 200) / 60) ** 2 < 1
    oval = faz_shape(ellipse, 10.0)
    assert oval["faz_axis_ratio"] == pytest.approx(2, abs=0.02) and oval["faz_acircularity"] > 1.05
    assert set(regional_measures(ellipse, "FAZ", 10.0)) >= {"faz_axis_ratio", "grid_centre", "eye"}


def test_icc_and_bland_altman_on_their_papers_example_and_on_exact_agreement():
    from samocta.measure.agreement import agreement, icc21

    # Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; their ICC(2,1) is 0.29
    table = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    assert icc21(table) == pytest.approx(0.29, abs=0.005)
    a = np.linspace(5, 15, 20)
    same = agreement(a, a)
    assert same.bias == 0 and same.icc21 == pytest.approx(1) and same.loa_low == same.loa_high == 0
    shifted = agreement(a, a + 1.0)  # a constant offset: bias 1, limits at 1, agreement (not correlation) below 1
    assert shifted.bias == pytest.approx(1) and shifted.loa_low == pytest.approx(1) and shifted.icc21 < 1
