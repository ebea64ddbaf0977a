"""The verdict on one org's hour: Okta's uuids against the lake's (and the Iceberg table's), per event type.

Per event type of the hour:

- **present**: Okta returned it and the lake holds a row of it for this org (or a row without an org:
  a file replay's, which can only be matched by uuid);
- **missing**: Okta returned it, the lake holds no row of it, and no dead letter accounts for it;
- **dead-lettered**: Okta returned it, the lake does not hold it, and the pipeline refused it (a dead
  letter with that uuid, of this org or of none): accounted for, with its reason, not missing;
- **unexpected**: the lake holds it for this org and hour, Okta did not return it. Reported, never deleted.

With an Iceberg table the same is said of the table (``iceberg_*``). An hour's result: ``missing`` when
anything is missing from the lake or the table, else ``unexpected`` when anything is unexpected, else
``clean``; after a repair that left nothing missing, ``repaired``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from common.durations import rfc3339


@dataclass
class TypeVerdict:
    okta: int = 0
    present: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dead_lettered: list[dict] = field(default_factory=list)  # {"uuid", "stage", "error", "run_id"}
    iceberg: bool = False
    iceberg_present: int = 0
    iceberg_missing: list[str] = field(default_factory=list)
    iceberg_unexpected: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        found = {"okta": self.okta, "present": self.present, "missing": len(self.missing),
                 "unexpected": len(self.unexpected), "dead_lettered": len(self.dead_lettered),
                 "missing_uuids": sorted(self.missing), "unexpected_uuids": sorted(self.unexpected),
                 "dead_letters": sorted(self.dead_lettered, key=lambda d: d["uuid"])}
        if self.iceberg:
            found["iceberg"] = {"present": self.iceberg_present, "missing": len(self.iceberg_missing),
                                "unexpected": len(self.iceberg_unexpected),
                                "missing_uuids": sorted(self.iceberg_missing),
                                "unexpected_uuids": sorted(self.iceberg_unexpected)}
        return found


@dataclass
class HourVerdict:
    hour: _dt.datetime
    types: dict[str, TypeVerdict] = field(default_factory=dict)
    unreadable: int = 0  # events Okta returned whose uuid or type could not be read
    doubled_rows: int = 0  # rows the lake holds more than once (same uuid and target_index)
    repaired: int = 0  # events the repair added (missing before it, present after)
    error: str | None = None  # the hour could not be audited (Okta did not answer)

    def total(self, name: str) -> int:
        return sum(len(v) if isinstance(v, list) else v for v in (getattr(t, name) for t in self.types.values()))

    @property
    def missing(self) -> int:
        """Events missing from the lake or the table (an event missing from both counts once)."""
        return len({u for t in self.types.values() for u in t.missing + t.iceberg_missing})

    @property
    def unexpected(self) -> int:
        return len({u for t in self.types.values() for u in t.unexpected + t.iceberg_unexpected})

    @property
    def result(self) -> str:
        if self.error is not None:
            return "failed"
        if self.missing:
            return "missing"
        if self.repaired:
            return "repaired"
        return "unexpected" if self.unexpected else "clean"

    def as_dict(self) -> dict:
        found = {"hour": rfc3339(self.hour), "result": self.result}
        if self.error is not None:
            return {**found, "error": self.error}
        return {**found, "okta": self.total("okta"), "present": self.total("present"), "missing": self.missing,
                "unexpected": self.unexpected, "dead_lettered": self.total("dead_lettered"),
                "repaired": self.repaired, "unreadable": self.unreadable, "doubled_rows": self.doubled_rows,
                "types": {name: verdict.as_dict() for name, verdict in sorted(self.types.items())}}


def judge(org: str, hour: _dt.datetime, okta, lake, iceberg=None, dead: dict | None = None,
          selected=lambda event_type: True) -> HourVerdict:
    """The verdict on ``hour`` of ``org`` (its host): ``okta`` an :class:`~tools.audit.okta_read.OktaHour`,
    ``lake`` / ``iceberg`` :class:`~tools.audit.held.Held`, ``dead`` uuid -> its dead letter, ``selected`` the
    org's event-type selection (rows of other types are not the org's audit's business)."""
    dead = {u: d for u, d in (dead or {}).items() if d.get("okta_org") in (None, org)}
    verdict = HourVerdict(hour, unreadable=okta.unreadable, doubled_rows=lake.doubled_rows(org, hour))

    def rows(held, of_org):
        return {uuid: event_type for uuid, event_type in held.of(of_org, hour).items() if selected(event_type)}

    stores = [("lake", rows(lake, org), rows(lake, None))]
    if iceberg is not None:
        stores.append(("iceberg", rows(iceberg, org), rows(iceberg, None)))

    def of_type(event_type: str) -> TypeVerdict:
        return verdict.types.setdefault(event_type, TypeVerdict(iceberg=iceberg is not None))

    for uuid, event_type in okta.uuids.items():
        entry = of_type(event_type)
        entry.okta += 1
        for store, own, unlabelled in stores:
            held = uuid in own or uuid in unlabelled
            if store == "lake":
                if held:
                    entry.present += 1
                elif uuid in dead:
                    entry.dead_lettered.append({"uuid": uuid, **{k: v for k, v in dead[uuid].items()
                                                                 if k != "okta_org"}})
                else:
                    entry.missing.append(uuid)
            elif held:
                entry.iceberg_present += 1
            elif uuid not in dead:
                entry.iceberg_missing.append(uuid)
    for store, own, _ in stores:
        for uuid, event_type in own.items():
            if uuid not in okta.uuids:
                (of_type(event_type).unexpected if store == "lake" else of_type(event_type).iceberg_unexpected
                 ).append(uuid)
    return verdict


def failed(hour: _dt.datetime, error: str) -> HourVerdict:
    return HourVerdict(hour, error=error)
