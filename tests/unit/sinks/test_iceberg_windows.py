"""A streaming window as one Iceberg snapshot, in-process (embedded SQLite catalog in tmp_path, no server).

The window buffer commits the lake, then the snapshot; a crash between the two is healed by the replay;
the per-process committer keeps the table open and expires old snapshots as it goes.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
from collections import Counter

import pytest

from sinks.iceberg import windows as iceberg_windows
from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import snapshot_summaries
from sinks.iceberg.windows import WindowCommitter
from streaming.settings import WindowSettings
from streaming.window_buffer import WindowBuffer
from tests.support.helpers import read_lake, window_settings
from tests.support.iceberg import make_rows
from tests.support.okta import make_events
from transforms.records import RawBatch

START = 1_764_547_200.0  # a window start (UTC midnight)


@pytest.fixture(autouse=True)
def fresh_committers(monkeypatch):
    monkeypatch.setattr(iceberg_windows, "_COMMITTERS", {})


def settings(tmp_path) -> WindowSettings:
    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "warehouse"))
    return window_settings(tmp_path / "lake", dedupe_horizon=0, max_payload_bytes=10_000, iceberg=target)


def table_keys(window: WindowSettings) -> Counter:
    table = load_catalog(window.iceberg).load_table("okta.events")
    arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    return Counter(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))


def lake_keys(window: WindowSettings) -> Counter:
    return Counter((r["uuid"], r["target_index"]) for r in read_lake(window.lake.root))


def commit(window: WindowSettings, events: list[dict], at: float, cursor: str | None = None):
    buffer = WindowBuffer(window, clock=lambda: at)
    buffer.open(at)
    buffer.take(RawBatch("page", "page", [1], [json.dumps(events).encode()]))
    return buffer.commit("okta", cursor)


def test_a_window_is_one_snapshot_with_its_summary_and_the_settings_stay_plain(tmp_path):
    window = settings(tmp_path)
    assert pickle.loads(pickle.dumps(window)) == window  # what Beam ships to workers: no catalog inside
    events = make_events(40, dt.datetime.fromtimestamp(START, dt.timezone.utc), dt.timedelta(seconds=1))
    result = commit(window, events[:20], START, cursor="https://acme.okta.com/api/v1/logs?after=1")
    commit(window, events[20:], START + 60, cursor="https://acme.okta.com/api/v1/logs?after=2")
    assert result.rows > 0
    assert table_keys(window) == lake_keys(window) and max(table_keys(window).values()) == 1
    snapshots = snapshot_summaries(load_catalog(window.iceberg).load_table("okta.events"))
    assert [(s["run-id"], s["window"], s["source"], s["cursor"]) for s in snapshots] == [
        ("job1", "w20251201T000000Z", "okta", "https://acme.okta.com/api/v1/logs?after=1"),
        ("job1", "w20251201T000100Z", "okta", "https://acme.okta.com/api/v1/logs?after=2")]
    assert int(snapshots[0]["rows-added"]) == int(snapshots[0]["lake-rows-written"]) == result.rows


def test_a_crash_between_the_lake_and_the_snapshot_is_healed_by_the_replayed_window(tmp_path, monkeypatch):
    window = settings(tmp_path)
    events = make_events(30, dt.datetime.fromtimestamp(START, dt.timezone.utc), dt.timedelta(seconds=1))
    commit(window, events[:10], START)

    def crash(*args, **kwargs):
        raise RuntimeError("killed between the lake commit and the Iceberg commit")

    with monkeypatch.context() as patch:
        patch.setattr(WindowCommitter, "commit_files", crash)
        with pytest.raises(RuntimeError):  # the caller stores no cursor: the window is read again
            commit(window, events[10:20], START + 60)
    assert sum(lake_keys(window).values()) > sum(table_keys(window).values())
    monkeypatch.setattr(iceberg_windows, "_COMMITTERS", {})  # a new process
    commit(window, events[10:30], START + 60)  # the replay: rows 10..19 are already in the lake
    keys = table_keys(window)
    assert keys == lake_keys(window) and max(keys.values()) == 1


def test_the_retention_comes_from_the_option_and_zero_never_expires(tmp_path, okta_token_env):
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.config import resolve

    def options(*extra):
        return PipelineOptions(["--streaming", "--source=okta", "--okta_org_url=https://acme.okta.com",
                                f"--state={tmp_path}/s.json", f"--output={tmp_path}/lake",
                                "--iceberg_table=okta.events", *extra])

    assert resolve(options("--iceberg_keep_snapshots=-1"), local=True) == (
        None, ["--iceberg_keep_snapshots must be 0 or more"])
    config, _ = resolve(options("--iceberg_keep_snapshots=5"), local=True)
    window = config.window
    assert window.iceberg_keep_snapshots == 5 and window.iceberg.table == "okta.events"
    assert iceberg_windows.committer(window.iceberg, 5).keep_snapshots == 5
    never = iceberg_windows.committer(window.iceberg, 0)
    for w in range(12):
        never.commit_rows(make_rows(range(w, w + 1)), {"window": f"w{w}"})
    assert never.snapshots_expired == 0
    assert len(load_catalog(window.iceberg).load_table("okta.events").snapshots()) == 12


def test_the_committer_keeps_the_newest_snapshots_and_reloads_after_another_writer(tmp_path):
    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "warehouse"))
    committer = WindowCommitter(target, keep_snapshots=3, expire_every=2)
    for w in range(7):
        committer.commit_rows(make_rows(range(w * 10, w * 10 + 10)), {"window": f"w{w}"})
        if w == 3:  # another writer commits meanwhile: the cached table is stale, the commit still lands
            other = WindowCommitter(target, expire_every=0)
            other.commit_rows(make_rows(range(1000, 1010)), {"window": "other"})
    table = load_catalog(target).load_table("okta.events")
    assert len(table.snapshots()) <= 4  # expired after every second commit, down to 3, plus one since
    assert committer.snapshots_expired >= 3
    assert [s["window"] for s in snapshot_summaries(table)][-1] == "w6"
    rows = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    keys = set(zip(rows.column("uuid").to_pylist(), rows.column("target_index").to_pylist()))
    assert rows.num_rows == len(keys) == 2 * 80


def test_the_key_check_plans_from_cached_manifests_and_finds_what_pyiceberg_finds(tmp_path):
    """A long stream of windows into one partition: each commit decodes only the manifests written since the
    last one, the files it checks are those pyiceberg's own planning picks, and a replay adds nothing."""
    from sinks.iceberg import keys as iceberg_keys
    from sinks.iceberg.commit import touched_filter

    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "warehouse"))
    committer = WindowCommitter(target, keep_snapshots=5, expire_every=4)
    decoded = []
    for w in range(30):  # 10 events a window, published in minute w of the day: one file each
        before = iceberg_keys.manifests_decoded()
        result = committer.commit_rows(make_rows(range(w * 60, w * 60 + 60, 6)), {"run-id": f"w{w}"})
        assert result.rows_added == 20
        decoded.append(iceberg_keys.manifests_decoded() - before)
    assert max(decoded[10:]) <= 3, decoded  # not one per manifest of the table
    table = load_catalog(target).load_table("okta.events")
    snapshot = table.current_snapshot()
    from tests.support.iceberg import DAY

    elsewhere = make_rows(range(5), day=DAY + dt.timedelta(days=3))
    for rows in (make_rows(range(600, 610)), make_rows(range(0, 3000, 97)), elsewhere):
        mine = iceberg_keys.candidate_files(table, snapshot, iceberg_keys.key_ranges(rows))
        theirs = table.scan(row_filter=touched_filter(rows)).plan_files()
        assert sorted(f.file_path for f in mine) == sorted(t.file.file_path for t in theirs)
        assert bool(mine) == (rows.column("published")[0].as_py().date() == DAY.date())
    replay = committer.commit_rows(make_rows(range(0, 1800, 6)), {"run-id": "replay"})
    assert replay.rows_added == 0 and replay.rows_present == 600
    keys = table_keys_of(load_catalog(target).load_table("okta.events"))
    assert len(keys) == 600 and set(keys.values()) == {1}


def table_keys_of(table) -> Counter:
    arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    return Counter(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))
