"""Tumour prompts: parsing, one-sentence errors, rasterising strokes and outlines."""

from __future__ import annotations

import numpy as np
import pytest

from napari_brain_dl.core.tasks.tumor_prompts import (
    box_polygon,
    parse_prompt,
    parse_prompts,
    polygon_mask,
    stroke_mask,
)

SHAPE = (20, 24, 16)
LPS = np.diag([-2.0, -2.0, 3.0, 1.0])


def test_lasso_and_box_find_their_slice() -> None:
    lasso = parse_prompt({"kind": "lasso", "points": [[3, 4, 7], [10, 4, 7], [10, 12, 7]]}, SHAPE, LPS)
    assert (lasso.slice_axis, lasso.slice_index, lasso.positive, lasso.region) == (2, 7, True, "WT")
    box = parse_prompt({"kind": "box", "sign": "+", "points": [[3, 4, 7], [3, 12, 11]]}, SHAPE, LPS)
    assert (box.slice_axis, box.slice_index) == (0, 3)
    assert box_polygon(box).tolist() == [[4, 7], [4, 11], [12, 11], [12, 7]]


def test_mm_coordinates_go_through_the_affine() -> None:
    world = LPS @ np.array([5, 6, 7, 1.0])
    p = parse_prompt(
        {"kind": "click", "sign": "-", "coords": "mm", "points": [world[:3].tolist()]}, SHAPE, LPS
    )
    assert p.points[0].tolist() == [5, 6, 7] and not p.positive


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"kind": "click", "points": [[25, 1, 1]]}, "outside the scan"),
        ({"kind": "scribble", "points": [[1, 1, 1], [1, 1, -3]]}, "outside the scan"),
        ({"kind": "lasso", "points": [[1, 1, 1], [1, 5, 1]]}, "at least three points"),
        ({"kind": "lasso", "points": [[1, 1, 1], [1, 5, 1], [1, 9, 1]]}, "no area"),
        ({"kind": "box", "points": [[2, 3, 4], [2, 3, 4]]}, "zero size"),
        ({"kind": "box", "points": [[2, 3, 4], [2, 9, 4]]}, "zero size"),
        ({"kind": "box", "points": [[2, 3, 4], [5, 9, 8]]}, "one slice"),
        ({"kind": "blob", "points": [[2, 3, 4]]}, "Unknown prompt kind"),
        ({"kind": "click", "sign": "?", "points": [[2, 3, 4]]}, "sign"),
        ({"kind": "click", "region": "ET", "points": [[2, 3, 4]]}, "whole tumour"),
        ({"kind": "scribble", "points": [[2, 3]]}, "triples"),
    ],
)
def test_bad_prompts_are_one_sentence(item: dict, words: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_prompt(item, SHAPE, LPS)
    text = str(err.value)
    assert words in text and text.count(". ") == 0 and text.endswith(".")


def test_a_list_is_checked_whole_and_names_the_bad_prompt() -> None:
    items = [{"kind": "click", "points": [[1, 1, 1]]}, {"kind": "lasso", "points": [[1, 1, 1]]}]
    with pytest.raises(ValueError, match=r"^Prompt 2: A lasso needs at least three points"):
        parse_prompts(items, SHAPE, LPS)
    assert len(parse_prompts({"prompts": items[:1]}, SHAPE, LPS)) == 1


def test_stroke_without_radius_is_a_gapless_line_and_with_radius_a_tube() -> None:
    box, line = stroke_mask(np.array([[2, 2, 2], [9, 5, 2]]), SHAPE, (1, 1, 1), 0.0)
    full = np.zeros(SHAPE, bool)
    full[box] = line
    assert full[2, 2, 2] and full[9, 5, 2] and 8 <= full.sum() <= 10  # about one voxel per step
    from scipy import ndimage

    assert ndimage.label(full, structure=np.ones((3, 3, 3)))[1] == 1
    box, tube = stroke_mask(np.array([[10, 12, 8]]), SHAPE, (1, 1, 1), 2.0)
    assert tube.sum() == 33  # voxels of a ball of radius 2


def test_polygon_includes_its_outline() -> None:
    tri = polygon_mask(np.array([[0, 0], [0, 6], [6, 0]]), (8, 8))
    assert tri[0, 0] and tri[0, 6] and tri[6, 0] and tri[3, 3] and not tri[5, 5]
