"""Which streaming files are rewritten together, and when (pure planning, no files)."""

from __future__ import annotations

from sinks.lake.compaction import output_name, piece
from sinks.lake.compaction_plan import DAY, HOUR, Group, Piece, Rules, bound, plan, waiting

DAY0 = 1_764_547_200  # 2025-12-01T00:00:00Z
RULES = Rules(settle=300.0, fold_at=3)


def windows(hour: int, count: int, every: int = 60) -> list[Piece]:
    return [Piece(f"w{hour}-{i}", hour, hour + i * every, small=True) for i in range(count)]


def test_an_open_hour_folds_only_once_enough_settled_window_files_are_there():
    pieces = windows(DAY0, 4)
    assert plan(pieces, DAY0 + 2 * 60 + 299, RULES) == []  # 2 settled, the third 1 s short
    assert plan(pieces, DAY0 + 2 * 60 + 300, RULES) == [Group("hour", DAY0, ("w1764547200-0", "w1764547200-1",
                                                                          "w1764547200-2"))]
    assert plan(pieces, DAY0 + 1000, RULES) == [Group("hour", DAY0, tuple(p.name for p in pieces))]


def test_a_closed_hour_takes_all_its_small_files_and_a_big_file_is_never_rewritten():
    pieces = windows(DAY0, 2) + [Piece("big", DAY0, DAY0, small=False, fresh=False)]
    assert plan(pieces, DAY0 + HOUR + 299, RULES) == []  # the hour ended, not settled
    assert plan(pieces, DAY0 + HOUR + 300, RULES) == [Group("hour", DAY0, ("w1764547200-0", "w1764547200-1"))]


def test_closed_days_become_one_file_named_after_the_newest():
    older = Piece("d", DAY0 - DAY, DAY0 - DAY, small=True, fresh=False)
    hours = [Piece(f"h{h}", DAY0 + h * HOUR, DAY0 + h * HOUR, small=True, fresh=False) for h in range(24)]
    now = DAY0 + DAY + 300
    assert plan([older] + hours, now, RULES) == [Group("day", DAY0, ("d",) + tuple(p.name for p in hours))]
    assert not waiting([older] + hours, now, RULES)
    assert waiting(hours, DAY0 + DAY + 299, RULES)


def test_file_names_carry_the_window_time_and_the_rows():
    assert piece("part-w20251201T013000Z-job1-0a1b.parquet") == Piece(
        "part-w20251201T013000Z-job1-0a1b.parquet", DAY0 + HOUR, DAY0 + HOUR + 1800, small=True)
    name = output_name(Group("hour", DAY0 + HOUR, ()), 12, "0123456789ab")
    assert name == "part-h20251201T01Z-12r-0123456789ab.parquet"
    assert piece(name) == Piece(name, DAY0 + HOUR, DAY0 + HOUR, small=True, fresh=False)
    assert not piece(output_name(Group("day", DAY0, ()), 300_000, "0123456789ab")).small
    assert piece("part-20251201T000000Z-a1b2c3-0001.parquet") is None  # a batch run's: never touched


def test_the_bound_counts_closed_days_closed_hours_and_the_open_hours():
    assert bound(Rules(), commit_every=10, pass_every=60) == 1 + 24 + 22 + 37
