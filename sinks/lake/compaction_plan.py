"""Which small files of one partition a streaming compaction rewrites together, and when (no I/O, no Beam).

A stream commits one small file per window and partition. Compaction folds them by the hour
and the day they belong to (for the Hive lake the window's time, from the file name; for the
Iceberg table the hour of the file's oldest ``published``), in three cases:

- **an open hour** (the current one, or one that ended less than ``settle`` ago): once it holds
  ``fold_at`` settled files written by commits (``fresh``), they and the hour's earlier
  compacted files that are still small become one file. So an open hour holds at most
  ``fold_at - 1`` settled window files, the unsettled ones and its compacted file(s);
- **a closed hour** of a day still open: all its small files, when there are two or more;
- **closed days**: all small files of every day that ended more than ``settle`` ago, when there
  are two or more, become one file (named after the newest of those days).

A file is *settled* once it is ``settle`` seconds old: a window's own steps that read its files
by name after the commit (the BigQuery stream, the Iceberg snapshot) are done long before. A file
of ``target`` size or more is never rewritten again, so a partition's bulk is written once per
level (window, hour, day), and a compaction's output never has to be compacted with itself.

So a partition holds, per day of windows, at most one file per closed hour (plus one per
``target`` rows) until its day closes, then one file for all its closed days (plus one per
``target`` rows), besides the open hour's few (:func:`bound`).
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR = 3600
DAY = 86400
SETTLE_SECONDS = 300.0
FOLD_AT = 12


@dataclass(frozen=True)
class Rules:
    """When files are rewritten: ``settle`` seconds after their window (and an hour's or a day's end), and an
    open hour once it holds ``fold_at`` settled fresh files."""

    settle: float = SETTLE_SECONDS
    fold_at: int = FOLD_AT


@dataclass(frozen=True)
class Piece:
    """One file as the plan sees it."""

    name: str
    hour: int  # the UTC hour it belongs to (epoch seconds of its start)
    written: float  # when its rows were committed (epoch seconds; a window's start for a window file)
    small: bool  # below the target size: it may be rewritten
    fresh: bool = True  # written by a commit, not by a compaction

    @property
    def day(self) -> int:
        return self.hour - self.hour % DAY

    def settled(self, now: float, rules: Rules) -> bool:
        return self.written + rules.settle <= now


@dataclass(frozen=True)
class Group:
    """Files to rewrite as one: ``level`` ``hour`` (``period`` the hour's start) or ``day`` (the newest day's)."""

    level: str
    period: int
    members: tuple[str, ...]


def hour_closed(hour: int, now: float, rules: Rules) -> bool:
    return hour + HOUR + rules.settle <= now


def day_closed(day: int, now: float, rules: Rules) -> bool:
    return day + DAY + rules.settle <= now


def plan(pieces: list[Piece], now: float, rules: Rules = Rules(), max_files: int = 0) -> list[Group]:
    """The groups to rewrite now, closed days first, then hours oldest first; ``max_files`` (when not 0) caps
    a group's members (the oldest are taken; the rest wait for a later pass)."""
    small = sorted((p for p in pieces if p.small and p.settled(now, rules)), key=lambda p: (p.written, p.name))
    groups = []
    closed = [p for p in small if day_closed(p.day, now, rules)]
    if len(closed) >= 2:
        groups.append(Group("day", max(p.day for p in closed), _names(closed, max_files)))
    by_hour: dict[int, list[Piece]] = {}
    for piece in small:
        if not day_closed(piece.day, now, rules):
            by_hour.setdefault(piece.hour, []).append(piece)
    for hour in sorted(by_hour):
        found = by_hour[hour]
        closed = hour_closed(hour, now, rules)
        if (closed and len(found) >= 2) or (not closed and sum(1 for p in found if p.fresh) >= rules.fold_at):
            groups.append(Group("hour", hour, _names(found, max_files)))
    return groups


def waiting(pieces: list[Piece], now: float, rules: Rules = Rules()) -> bool:
    """Whether a later pass may still find work here without a new commit: some small file's day is not closed
    (or not settled yet). Files of closed days that no group took are final."""
    return any(p.small and not (day_closed(p.day, now, rules) and p.settled(now, rules)) for p in pieces)


def bound(rules: Rules, commit_every: float, pass_every: float) -> int:
    """The most files a partition can hold when every file is below the target size and a stream commits to
    it every ``commit_every`` seconds, with compaction passes ``pass_every`` seconds apart: one file for its
    closed days, one per hour of the open day, and in the (at most two) open hours up to ``fold_at - 1``
    settled window files each, plus those written in the last ``settle + pass_every`` seconds."""
    recent = int((rules.settle + pass_every) // commit_every) + 1
    return 1 + 24 + 2 * (rules.fold_at - 1) + recent


def _names(pieces: list[Piece], max_files: int) -> tuple[str, ...]:
    chosen = pieces[:max_files] if max_files else pieces
    return tuple(p.name for p in chosen)
