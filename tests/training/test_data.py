"""Split helpers: partitions, class shares, groups never straddling the split, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidInput
from app.training.data import group_split, stratified_split


def _is_partition(train: np.ndarray, val: np.ndarray, n: int) -> bool:
    both = np.concatenate([train, val])
    return bool(np.array_equal(np.sort(both), np.arange(n)))


def test_stratified_split_keeps_each_class_share_on_both_sides() -> None:
    y = np.repeat([0, 1, 2], [500, 300, 200])
    train, val = stratified_split(y, val_fraction=0.2, seed=3)
    assert _is_partition(train, val, y.size)
    assert train.dtype == np.int64 and np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    np.testing.assert_array_equal(np.bincount(y[val]), [100, 60, 40])
    np.testing.assert_array_equal(np.bincount(y[train]), [400, 240, 160])


def test_stratified_split_puts_small_classes_on_both_sides_and_singletons_in_train() -> None:
    y = np.array(["a"] * 20 + ["b"] * 2 + ["c"])
    train, val = stratified_split(y, val_fraction=0.1, seed=0)
    assert _is_partition(train, val, y.size)
    assert set(y[val]) == {"a", "b"}
    assert set(y[train]) == {"a", "b", "c"}


def test_stratified_split_is_seeded() -> None:
    y = np.repeat([0, 1], 50)
    a = stratified_split(y, val_fraction=0.3, seed=7)
    b = stratified_split(y, val_fraction=0.3, seed=7)
    c = stratified_split(y, val_fraction=0.3, seed=8)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_group_split_never_puts_a_group_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 40, size=1000)
    train, val = group_split(groups, val_fraction=0.25, seed=1)
    assert _is_partition(train, val, groups.size)
    assert not set(groups[train]) & set(groups[val])
    assert abs(val.size / groups.size - 0.25) < 0.05  # within one group of the target


def test_group_split_is_seeded_and_leaves_one_group_per_side_at_least() -> None:
    groups = np.array([1, 1, 1, 2])
    train, val = group_split(groups, val_fraction=0.9, seed=0)
    assert train.size > 0 and val.size > 0
    a = group_split(np.arange(30) // 3, val_fraction=0.3, seed=5)
    b = group_split(np.arange(30) // 3, val_fraction=0.3, seed=5)
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, True, "0.2"])
def test_fractions_outside_the_open_unit_interval_are_rejected(fraction: object) -> None:
    with pytest.raises(InvalidInput) as info:
        stratified_split([0, 1, 0, 1], val_fraction=fraction)  # type: ignore[arg-type]
    assert info.value.field == "val_fraction"


def test_group_split_needs_two_groups_and_1d_input() -> None:
    with pytest.raises(InvalidInput) as info:
        group_split([7, 7, 7])
    assert info.value.field == "groups"
    with pytest.raises(InvalidInput):
        group_split([[1, 2], [3, 4]])
    with pytest.raises(InvalidInput):
        stratified_split([0.0, float("nan"), 1.0])
