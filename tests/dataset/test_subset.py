"""dataset/subset.py: Subset views and the seeded validation split of train.py --val-split."""
from __future__ import annotations

import pickle

import pytest

from dataset.annotation import Annotation
from dataset.subset import Subset, random_split


class _Reader:
    """Ten one-box images, with ids, class names and a pixel loader like RecordDetection's."""

    class_names = ("a",)

    def __init__(self, n: int = 10) -> None:
        self.ids = tuple(f"img{i}" for i in range(n))
        self._anns = [Annotation.from_lists(f"{i}.jpg", 10 + i, 10, [[0, 0, 5, 5]], [0]) for i in range(n)]

    def __len__(self) -> int:
        return len(self._anns)

    def __getitem__(self, i: int) -> Annotation:
        return self._anns[i]

    def load(self, i: int):
        return f"pixels{i}", self._anns[i]


def test_split_is_seeded_disjoint_and_complete():
    reader = _Reader(10)
    train, val = random_split(reader, 0.3, seed=7)
    assert (len(train), len(val)) == (7, 3)
    assert sorted(train.indices + val.indices) == list(range(10))
    assert list(train.indices) == sorted(train.indices) and list(val.indices) == sorted(val.indices)
    again_train, again_val = random_split(reader, 0.3, seed=7)
    assert (again_train.indices, again_val.indices) == (train.indices, val.indices)
    others = {random_split(reader, 0.3, seed=s)[1].indices for s in range(8)}
    assert len(others) > 4  # the seed chooses
    assert val.class_names == ("a",)
    assert val.ids == tuple(f"img{i}" for i in val.indices)
    assert [val[k].width for k in range(3)] == [10 + i for i in val.indices]


@pytest.mark.parametrize("n, fraction, sizes", [(10, 0.1, (9, 1)), (10, 0.01, (9, 1)), (2, 0.9, (1, 1)),
                                                (5, 0.5, (3, 2))])
def test_split_sizes(n, fraction, sizes):
    train, val = random_split(_Reader(n), fraction, seed=0)
    assert (len(train), len(val)) == sizes


def test_subset_passes_the_pixel_loader_through_and_pickles():
    reader = _Reader(6)
    sub = Subset(reader, [4, 1])
    assert sub.load(0) == ("pixels4", reader[4]) and sub.load(1)[0] == "pixels1"
    assert not hasattr(sub, "image")  # only what the reader has
    copy = pickle.loads(pickle.dumps(sub))  # loader worker processes get a copy
    assert copy.load(1)[0] == "pixels1" and copy.indices == (4, 1)
    with pytest.raises(IndexError, match="subset index 6 out of range for 6 images"):
        Subset(reader, [6])


@pytest.mark.parametrize("n, fraction, message", [(10, 0.0, "between 0 and 1"), (10, 1.0, "between 0 and 1"),
                                                  (1, 0.5, "from 1 image")])
def test_split_errors(n, fraction, message):
    with pytest.raises(ValueError, match=message):
        random_split(_Reader(n), fraction)
