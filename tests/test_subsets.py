"""Nested training subsets (stages/training/subsets.py) and the study.train_percent param."""

from __future__ import annotations

import numpy as np
import pytest

from stages.core.errors import ParamError
from stages.core.params import study_percents
from stages.training.subsets import nested_subset, per_class_count

# An unbalanced split: 3 classes of 40, 17 and 5 training images, rows interleaved.
LABELS = np.array([0] * 40 + [1] * 17 + [2] * 5)
ORDER = np.random.default_rng(3).permutation(len(LABELS))
LABELS = LABELS[ORDER]
PATHS = [f"class{lab}/img_{i:03d}.png" for i, lab in enumerate(LABELS)]
PERCENTS = [1, 10, 25, 33, 50, 75, 99, 100]


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_every_smaller_subset_is_inside_every_larger_one_per_class(seed):
    subsets = {p: set(nested_subset(PATHS, LABELS, p, seed).tolist()) for p in PERCENTS}
    for small in PERCENTS:
        for large in PERCENTS:
            if small <= large:
                assert subsets[small] <= subsets[large], (seed, small, large)
    for p, rows in subsets.items():
        counts = np.bincount(LABELS[sorted(rows)], minlength=3)
        assert counts.tolist() == [per_class_count(n, p) for n in (40, 17, 5)], p  # per class, not overall
    assert subsets[100] == set(range(len(LABELS)))


def test_counts_round_half_up_and_keep_one_image_per_class():
    assert per_class_count(40, 25) == 10 and per_class_count(17, 50) == 9 and per_class_count(5, 1) == 1
    assert per_class_count(84, 25) == 21 and per_class_count(5, 100) == 5
    with pytest.raises(ValueError):
        per_class_count(10, 0)


def test_the_order_depends_on_the_seed_not_on_the_rows_order():
    a = nested_subset(PATHS, LABELS, 25, seed=0)
    assert not np.array_equal(a, nested_subset(PATHS, LABELS, 25, seed=1))  # another seed, another subset
    np.testing.assert_array_equal(a, nested_subset(PATHS, LABELS, 25, seed=0))  # repeatable
    assert (np.diff(a) > 0).all()  # returned in split order
    # The same images are chosen when the split lists its rows in another order.
    perm = np.random.default_rng(9).permutation(len(LABELS))
    shuffled = nested_subset([PATHS[i] for i in perm], LABELS[perm], 25, seed=0)
    assert {PATHS[perm[i]] for i in shuffled} == {PATHS[i] for i in a}


def test_a_class_keeps_its_images_when_another_class_grows():
    """An image's rank is its own (seed, path) hash: adding images to class 1 leaves class 0's subset alone."""
    more_labels = np.concatenate([LABELS, [1] * 10])
    more_paths = PATHS + [f"class1/extra_{i}.png" for i in range(10)]
    before = {PATHS[i] for i in nested_subset(PATHS, LABELS, 50, 4) if LABELS[i] == 0}
    after = {more_paths[i] for i in nested_subset(more_paths, more_labels, 50, 4) if more_labels[i] == 0}
    assert before == after


@pytest.mark.parametrize("value, message", [
    ({"seeds": [0], "train_percent": [0, 100]}, ">= 1"),
    ({"seeds": [0], "train_percent": [50, 150]}, "<= 100"),
    ({"seeds": [0], "train_percent": [50, 50]}, "distinct"),
    ({"seeds": [0], "train_percent": [0.5]}, "integer"),
    ({"seeds": [0], "train_percent": []}, "non-empty"),
    ({"seeds": [0]}, "missing"),
])
def test_bad_train_percent_names_the_key(value, message):
    with pytest.raises(ParamError, match=message) as err:
        study_percents(value)
    assert "study.train_percent" in str(err.value)


def test_train_percent_is_returned_ascending():
    assert study_percents({"seeds": [0], "train_percent": [100, 25, 50]}) == [25, 50, 100]


@pytest.mark.parametrize("percent", [0, 101, -5])
def test_a_percent_outside_1_to_100_is_refused_with_the_value(percent):
    with pytest.raises(ValueError, match=rf"^percent must be in 1\.\.100, got {percent}$"):
        per_class_count(10, percent)


def test_paths_and_labels_of_different_lengths_are_refused_with_both_counts():
    with pytest.raises(ValueError, match=r"^3 paths but 2 labels$"):
        nested_subset(["a", "b", "c"], [0, 1], 50, 0)


def test_the_subset_is_integer_row_indices_even_when_empty():
    # The indices select rows of the prepared arrays: floats (numpy's default for an empty list) cannot.
    for paths, labels in ((["a", "b"], [0, 1]), ([], [])):
        rows = nested_subset(paths, labels, 50, 0)
        assert rows.dtype == np.int64
        np.arange(10)[rows]  # usable as an index
