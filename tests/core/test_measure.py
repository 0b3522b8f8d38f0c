"""Tumour volumes and RANO diameters on synthetic lesions of known size and on a real BraTS label."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.tasks.measure import tumor_measurements
from napari_brain_dl.core.volume import Volume


def transformed(vol: Volume, order: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> Volume:
    """The same physical image with axes permuted (new axis m = old axis order[m]) and flipped."""
    data = np.transpose(vol.data, order)
    data = np.flip(data, axis=[m for m in range(3) if flips[m]]) if any(flips) else data
    p = np.zeros((4, 4))
    p[3, 3] = 1
    for m in range(3):
        p[order[m], m] = -1.0 if flips[m] else 1.0
        p[order[m], 3] = data.shape[m] - 1 if flips[m] else 0.0
    return Volume(np.ascontiguousarray(data), vol.affine @ p, name=vol.name)


def ellipse_labels(shape=(60, 50, 12), spacing=(1.0, 1.0, 1.0), centre=(30, 25), semi=(12, 7),
                   slices=range(4, 7), value=3) -> Volume:
    """RAS label map with an elliptic cylinder; semi-axes in voxels along i (R) and j (A)."""
    data = np.zeros(shape, np.uint8)
    i, j = np.mgrid[:shape[0], :shape[1]]
    inside = ((i - centre[0]) / semi[0]) ** 2 + ((j - centre[1]) / semi[1]) ** 2 <= 1.0
    for k in slices:
        data[:, :, k][inside] = value
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-20.0, 30.0, -5.0)
    return Volume(data, affine, name="seg")


def world(vol: Volume, index: list[int]) -> np.ndarray:
    return (vol.affine @ [*index, 1.0])[:3]


def test_ellipse_at_1mm_has_exact_diameters() -> None:
    seg = ellipse_labels()
    m = tumor_measurements(seg)
    lesion = m["lesions"][0]
    assert lesion["longest_mm"] == pytest.approx(24.0)
    assert lesion["perpendicular_mm"] == pytest.approx(14.0)
    assert lesion["product_mm2"] == pytest.approx(336.0)
    assert lesion["measurable"] and m["measurable_lesions"] == 1
    assert m["sum_of_products_mm2"] == pytest.approx(336.0)
    assert lesion["slice_axis"] == 2 and lesion["slice_index"] in (4, 5, 6) and lesion["slices"] == 3
    assert sorted(map(tuple, lesion["longest_endpoints"])) == [(18, 25, lesion["slice_index"]),
                                                               (42, 25, lesion["slice_index"])]
    assert sorted(map(tuple, lesion["perpendicular_endpoints"])) == [(30, 18, lesion["slice_index"]),
                                                                     (30, 32, lesion["slice_index"])]
    count = int(np.count_nonzero(seg.data == 3))
    assert m["enhancing_ml"] == pytest.approx(count * 0.001)
    assert m["whole_tumor_ml"] == pytest.approx(count * 0.001) == m["tumor_core_ml"]
    assert m["edema_ml"] == 0 and m["necrotic_core_ml"] == 0
    json.dumps(m)  # JSON-ready


def test_square_box_measures_its_diagonals() -> None:
    data = np.zeros((30, 30, 5), np.uint8)
    data[5:16, 8:19, 1:4] = 3  # 11 x 11 voxels: centres span 10 mm
    m = tumor_measurements(Volume(data, np.eye(4)))
    lesion = m["lesions"][0]
    assert lesion["longest_mm"] == pytest.approx(10 * np.sqrt(2))
    assert lesion["perpendicular_mm"] == pytest.approx(10 * np.sqrt(2))
    assert lesion["product_mm2"] == pytest.approx(200.0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.86, 0.86, 2.4), (0.5, 0.8, 3.0)])
def test_same_lesion_in_lps_and_lia_gives_same_numbers(spacing: tuple[float, float, float]) -> None:
    semi = (24, 10) if spacing[0] == 0.5 else (14, 9)
    ras = ellipse_labels(shape=(70, 40, 9), spacing=spacing, centre=(35, 20), semi=semi, slices=range(3, 6))
    expected = (2 * semi[0] * spacing[0], 2 * semi[1] * spacing[1])
    lps = transformed(ras, (0, 1, 2), (True, True, False))
    lia = transformed(ras, (0, 2, 1), (True, True, False))
    assert (ras.axcodes, lps.axcodes, lia.axcodes) == ("RAS", "LPS", "LIA")
    results = [tumor_measurements(v) for v in (ras, lps, lia)]
    for vol, m in zip((ras, lps, lia), results, strict=True):
        lesion = m["lesions"][0]
        assert lesion["longest_mm"] == pytest.approx(expected[0])
        assert lesion["perpendicular_mm"] == pytest.approx(expected[1])
        assert m["enhancing_ml"] == pytest.approx(results[0]["enhancing_ml"])
        assert m["enhancing_ml"] == pytest.approx(np.count_nonzero(vol.data) * np.prod(spacing) / 1000)
        # Endpoints are indices of this input array, on the same physical points as in RAS.
        for key in ("longest_endpoints", "perpendicular_endpoints"):
            ends = sorted(map(tuple, np.round([world(vol, e) for e in lesion[key]], 6)))
            ref = sorted(map(tuple, np.round([world(ras, e) for e in results[0]["lesions"][0][key]], 6)))
            assert np.allclose(ends, ref)
            assert all(vol.data[tuple(e)] == 3 for e in lesion[key])
        assert all(e[lesion["slice_axis"]] == lesion["slice_index"] for e in lesion["longest_endpoints"])
    assert results[2]["lesions"][0]["slice_axis"] == 1  # LIA: the I axis is the second one


def test_oblique_grid_keeps_in_plane_distances() -> None:
    seg = ellipse_labels()
    angle = np.radians(20.0)
    tilt = np.array([[1, 0, 0, 0], [0, np.cos(angle), -np.sin(angle), 0],
                     [0, np.sin(angle), np.cos(angle), 0], [0, 0, 0, 1]])
    spin = np.array([[np.cos(angle), -np.sin(angle), 0, 0], [np.sin(angle), np.cos(angle), 0, 0],
                     [0, 0, 1, 0], [0, 0, 0, 1]])
    for rotation, warned in ((spin, False), (tilt, True)):
        m = tumor_measurements(Volume(seg.data, rotation @ seg.affine))
        assert m["lesions"][0]["longest_mm"] == pytest.approx(24.0)
        assert m["lesions"][0]["perpendicular_mm"] == pytest.approx(14.0)
        assert any("tilted" in w for w in m["warnings"]) == warned


def test_empty_label_map() -> None:
    m = tumor_measurements(Volume(np.zeros((20, 20, 10), np.int16), np.diag([0.9, 0.9, 2.0, 1.0])))
    assert m["whole_tumor_ml"] == 0 and m["tumor_core_ml"] == 0 and m["enhancing_ml"] == 0
    assert m["lesions"] == [] and m["measurable_lesions"] == 0 and m["sum_of_products_mm2"] == 0
    assert m["warnings"] == []


def test_two_lesions_sorted_and_only_measurable_summed() -> None:
    seg = ellipse_labels()
    i, j = np.mgrid[:60, :50]
    small = ((i - 8) / 3) ** 2 + ((j - 8) / 2) ** 2 <= 1.0  # 6 x 4 mm: not measurable
    seg.data[:, :, 8][small] = 3
    seg.data[40:45, 40:45, 2:8] = 2  # edema and necrosis count in WT / TC only
    seg.data[50:52, 5:7, 2:4] = 1
    m = tumor_measurements(seg)
    assert [d["id"] for d in m["lesions"]] == [1, 2]
    big, tiny = m["lesions"]
    assert big["product_mm2"] == pytest.approx(336.0) and big["measurable"]
    assert tiny["longest_mm"] == pytest.approx(6.0) and tiny["perpendicular_mm"] == pytest.approx(4.0)
    assert not tiny["measurable"] and tiny["slice_index"] == 8 and tiny["slices"] == 1
    assert m["measurable_lesions"] == 1 and m["sum_of_products_mm2"] == pytest.approx(336.0)
    assert m["edema_ml"] == pytest.approx(0.150) and m["necrotic_core_ml"] == pytest.approx(0.008)
    et = m["enhancing_ml"]
    assert m["whole_tumor_ml"] == pytest.approx(et + 0.158)
    assert m["tumor_core_ml"] == pytest.approx(et + 0.008)


def test_rim_enhancing_lesion_is_measured_across_its_cavity() -> None:
    data = np.zeros((40, 40, 5), np.uint8)
    i, j = np.mgrid[:40, :40]
    r2 = (i - 20) ** 2 + (j - 20) ** 2
    data[:, :, 2][(r2 <= 100) & (r2 > 36)] = 3
    data[:, :, 2][r2 <= 36] = 1
    lesion = tumor_measurements(Volume(data, np.eye(4)))["lesions"][0]
    assert lesion["longest_mm"] == pytest.approx(20.0)
    assert lesion["perpendicular_mm"] == pytest.approx(20.0, abs=0.2)


def test_single_voxel_and_old_label_values() -> None:
    data = np.zeros((10, 10, 10), np.uint8)
    data[5, 5, 5] = 3
    data[1, 1, 1] = 4
    m = tumor_measurements(Volume(data, np.eye(4)))
    lesion = m["lesions"][0]
    assert lesion["longest_mm"] == 0 and lesion["perpendicular_mm"] == 0
    assert lesion["longest_endpoints"] == [[5, 5, 5], [5, 5, 5]]
    assert any("4" in w for w in m["warnings"])
    with pytest.raises(ValueError, match="connectivity"):
        tumor_measurements(Volume(data, np.eye(4)), connectivity=8)


def test_real_brats_label(data_dir) -> None:
    seg = io.load(data_dir / "brats_gli_00001" / "seg-BraTS23_1.nii.gz")
    assert seg.shape == (240, 240, 155)
    m = tumor_measurements(seg)
    counts = {v: int(np.count_nonzero(seg.data == v)) for v in (1, 2, 3)}
    assert seg.voxel_volume_ml == pytest.approx(0.001)
    assert m["necrotic_core_ml"] == pytest.approx(counts[1] / 1000)
    assert m["edema_ml"] == pytest.approx(counts[2] / 1000)
    assert m["enhancing_ml"] == pytest.approx(counts[3] / 1000)
    assert m["whole_tumor_ml"] == pytest.approx(sum(counts.values()) / 1000)
    assert m["tumor_core_ml"] == pytest.approx((counts[1] + counts[3]) / 1000)
    assert sum(d["voxels"] for d in m["lesions"]) == counts[3]
    top = m["lesions"][0]
    assert top["measurable"] and top["longest_mm"] >= top["perpendicular_mm"] >= 10
    for key in ("longest_endpoints", "perpendicular_endpoints"):
        a, b = (np.asarray(e) for e in top[key])
        assert seg.data[tuple(a)] == 3 and seg.data[tuple(b)] == 3
        assert a[top["slice_axis"]] == b[top["slice_axis"]] == top["slice_index"]
    (la, lb), (pa, pb) = (np.asarray(top[k], float) for k in ("longest_endpoints", "perpendicular_endpoints"))
    assert np.linalg.norm(lb - la) == pytest.approx(top["longest_mm"])
    cos = abs(np.dot(lb - la, pb - pa)) / (np.linalg.norm(lb - la) * np.linalg.norm(pb - pa))
    assert cos <= np.sin(np.radians(5.0)) + 1e-9
    json.dumps(m)
