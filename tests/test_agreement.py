"""Krippendorff's alpha against values worked out by hand and Krippendorff's own example."""

import math

import pytest

from annotations.agreement import alpha_by_criterion, coincidences, krippendorff_alpha


def test_two_raters_three_items_by_hand():
    # Units (1,1), (1,2), (2,2). Coincidences: o11 = 2, o12 = o21 = 1, o22 = 2; n1 = n2 = 3, n = 6.
    # Ordinal delta^2(1,2) = (n1 + n2 - (n1 + n2) / 2)^2 = 9.
    # D_o = (1 + 1) * 9 = 18; D_e = (3*3*9 + 3*3*9) / (6 - 1) = 32.4; alpha = 1 - 18 / 32.4 = 4/9.
    units = [(1, 1), (1, 2), (2, 2)]
    assert dict(coincidences(units)) == {(1, 1): 2, (1, 2): 1, (2, 1): 1, (2, 2): 2}
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha(units, level) == pytest.approx(4 / 9)


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units, missing values.
RELIABILITY_DATA = [
    [1, 1, None, 1],
    [2, 2, 3, 2],
    [3, 3, 3, 3],
    [3, 3, 3, 3],
    [2, 2, 2, 2],
    [1, 2, 3, 4],
    [4, 4, 4, 4],
    [1, 1, 2, 1],
    [2, 2, 2, 2],
    [None, 5, 5, 5],
    [None, None, 1, 1],
    [None, 3, None, None],
]


@pytest.mark.parametrize("level, expected", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorffs_published_example(level, expected):
    units = [[v for v in unit if v is not None] for unit in RELIABILITY_DATA]
    assert krippendorff_alpha(units, level) == pytest.approx(expected, abs=5e-4)


def test_undefined_cases():
    assert krippendorff_alpha([(3,), (4,)]) is None  # nothing pairable
    assert krippendorff_alpha([(3, 3), (3, 3)]) is None  # no variation
    assert krippendorff_alpha([(1, 5), (5, 1)]) < 0  # systematic disagreement
    with pytest.raises(ValueError):
        krippendorff_alpha([(1, 2)], "ratio-ish")


def test_alpha_by_criterion_from_rating_rows():
    rows = [
        {"rationale_id": "a", "scores": {"correctness": 5, "clarity": 4, "supports_answer": 5}},
        {"rationale_id": "a", "scores": {"correctness": 5, "clarity": 4, "supports_answer": 1}},
        {"rationale_id": "b", "scores": {"correctness": 1, "clarity": 4, "supports_answer": 5}},
        {"rationale_id": "b", "scores": {"correctness": 1, "clarity": 4, "supports_answer": 1}},
    ]
    alpha = alpha_by_criterion(rows)
    assert alpha["correctness"] == 1.0 and alpha["clarity"] is None and math.isclose(alpha["supports_answer"], -0.5)
