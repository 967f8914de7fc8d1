"""plain: the Python objects DSPy code returns, as JSON values (no dspy needed; the run
of a real pydantic model is in test_modules)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import unittest

from dspgo_worker.plain import plain
from dspgo_worker.values import MAX_VALUE_DEPTH


class Level(enum.Enum):
    LOW = "low"
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: int
    when: datetime.date


class Model:
    """Duck-typed as a pydantic model: model_dump(mode="json")."""

    def __init__(self, fails: bool = False):
        self.fails = fails

    def model_dump(self, mode: str = "python"):
        if self.fails:
            raise RuntimeError("cannot dump")
        return {"mode": mode, "level": Level.LOW}


class PlainTest(unittest.TestCase):
    def test_objects_become_their_json_values(self):
        cases = [
            (Level.LOW, "low"),
            (Level.HIGH, 2),
            (datetime.date(2026, 12, 7), "2026-12-07"),
            (datetime.datetime(2026, 12, 7, 11, 5, tzinfo=datetime.timezone.utc), "2026-12-07T11:05:00+00:00"),
            (datetime.time(9, 30), "09:30:00"),
            (Point(1, datetime.date(2026, 1, 2)), {"x": 1, "when": "2026-01-02"}),
            (Model(), {"mode": "json", "level": "low"}),
            ((1, (2, Level.LOW)), [1, [2, "low"]]),
            ({"b", "a", "c"}, ["a", "b", "c"]),
            (frozenset({3, 1}), [1, 3]),
            ({"k": [Level.HIGH, None]}, {"k": [2, None]}),
        ]
        for value, want in cases:
            with self.subTest(value=value):
                self.assertEqual(plain(value), want)

    def test_json_values_and_other_objects_stay(self):
        other = decimal.Decimal("1.5")
        for value in ("text", 3, 2.5, True, None, [1, "a"], {"a": {"b": 1}}, other, Model(fails=True), Point, Model):
            with self.subTest(value=value):
                self.assertEqual(plain(value), value)
        self.assertIs(plain(other), other, "left for the conversion to refuse by its class's name")
        self.assertEqual(plain({1: Level.LOW})[1], "low", "keys stay as they are, for the conversion to check")

    def test_members_that_do_not_compare_keep_the_sets_order(self):
        out = plain({1, "a"})
        self.assertEqual(sorted(map(str, out)), ["1", "a"])

    def test_deep_and_cyclic_values_end(self):
        cyclic: list = []
        cyclic.append(cyclic)
        out = plain(cyclic)
        for _ in range(MAX_VALUE_DEPTH + 1):
            out = out[0]
        self.assertIs(out, cyclic, "the nesting past the bound is left as it is")
