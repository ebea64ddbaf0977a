"""The baseline: the same flattening in plain single-process Python + orjson + pyarrow.

No Beam, no staging, no metrics: read the JSON Lines file, decode every line,
check uuid/eventType/published, keep ``personal.*``, type-check the
documented fields, drop repeated uuids per partition, and write one zstd
Parquet file per ``event_date=/event_type=`` partition. This is the
practical speed limit on one core; the benchmark compares the pipeline to it,
and a test checks that both write the same rows.

Written independently of ``transforms/`` on purpose (only the schema, which
is the contract, is shared).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.arrow import file_schema
from schemas.fields import COLUMNS

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
PY = {"string": str, "bool": bool}


def _published(value):
    if type(value) is not str or len(value) < 19 or value[10] not in "Tt ":
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return (moment - EPOCH) // dt.timedelta(microseconds=1), moment.date().isoformat()


def _get(obj, keys, type_):
    """Value at keys, None when absent; raises TypeError on a wrong type."""
    for key in keys[:-1]:
        obj = obj.get(key)
        if obj is None:
            return None
        if type(obj) is not dict:
            raise TypeError(key)
    value = obj.get(keys[-1])
    if value is not None and type(value) is not PY[type_]:
        raise TypeError(keys[-1])
    return value


def run(input_path: str, output_dir: str, raw_event: bool = True, prefix: str = "personal.") -> dict:
    """Flatten one JSON Lines file into a partitioned lake; return the counts.

    ``prefix`` is the kept event types' prefix ("" keeps every type).
    """
    schema = file_schema(raw_event)
    event_cols = [c for c in COLUMNS if c.origin == "event" and c.name not in ("uuid", "published")]
    target_cols = [c for c in COLUMNS if c.origin == "target"]
    parts: dict = defaultdict(lambda: {f.name: [] for f in schema})
    seen: set = set()
    counts = dict(read=0, kept=0, filtered=0, duplicates=0, dead=0, rows=0)
    with open(input_path, "rb") as handle:
        for line in handle:
            if line.isspace():
                continue
            counts["read"] += 1
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                counts["dead"] += 1
                continue
            if type(event) is not dict:
                counts["dead"] += 1
                continue
            uuid, etype = event.get("uuid"), event.get("eventType")
            published = _published(event.get("published"))
            if type(uuid) is not str or not uuid.strip() or type(etype) is not str or not etype \
                    or published is None:
                counts["dead"] += 1
                continue
            if not etype.startswith(prefix):
                counts["filtered"] += 1
                continue
            try:
                values = [_get(event, c.keys, c.type) for c in event_cols]
                targets = event.get("target")
                if targets is None or targets == []:
                    rows = [(None, [None] * len(target_cols))]
                elif type(targets) is not list or any(type(t) is not dict for t in targets):
                    raise TypeError("target")
                else:
                    rows = [(i, [_get(t, c.keys, c.type) for c in target_cols])
                            for i, t in enumerate(targets)]
            except TypeError:
                counts["dead"] += 1
                continue
            key = (published[1], etype)
            if (key, uuid) in seen:
                counts["duplicates"] += 1
                continue
            seen.add((key, uuid))
            counts["kept"] += 1
            cols = parts[key]
            raw = line.rstrip(b"\r\n").strip()
            for index, tvalues in rows:
                cols["uuid"].append(uuid)
                cols["published"].append(published[0])
                cols["target_index"].append(index)
                for c, v in zip(event_cols, values):
                    cols[c.name].append(v)
                for c, v in zip(target_cols, tvalues):
                    cols[c.name].append(v)
                if raw_event:
                    cols["raw_event"].append(raw)
                cols["okta_org"].append(None)  # a replay without --okta_org
                counts["rows"] += 1
    for (day, etype), cols in parts.items():
        folder = os.path.join(output_dir, f"event_date={day}", f"event_type={etype}")
        os.makedirs(folder, exist_ok=True)
        table = pa.Table.from_arrays([pa.array(cols[f.name], f.type) for f in schema], schema=schema)
        pq.write_table(table, os.path.join(folder, "part-0.parquet"), compression="zstd")
    return counts


if __name__ == "__main__":  # python -m bench.plain_pyarrow INPUT OUTPUT [PREFIX]
    import json
    import sys

    print(json.dumps(run(sys.argv[1], sys.argv[2], prefix=sys.argv[3] if len(sys.argv) > 3 else "personal.")))
