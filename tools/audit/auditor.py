"""One audit, start to end: which hours, Okta's answers, what the stores hold, the verdicts, the repair, the records.

1. The hours: whole UTC hours of ``[since, until)`` that ended ``--settle`` ago, minus (``--skip_clean``)
   those the lake's audit records show clean for the same org and selection (:mod:`tools.audit.hours`).
2. Okta: each org's hours, the orgs in parallel threads, each within its own rate governor and share
   (:mod:`tools.audit.okta_read`); an org that does not answer is reported failed, the others go on.
3. The stores: the lake's files of those days, once for every org, the Iceberg table's rows, and the
   dead letters of the events Okta holds that the lake does not (:mod:`tools.audit.held`).
4. The verdicts per org, hour and event type (:mod:`tools.audit.compare`).
5. ``--repair``: a backfill of the hours with missing events per org (:mod:`tools.audit.repair`), then those
   hours judged again against the same Okta answers: ``repaired`` when nothing is missing any more.
6. A record per org under ``LAKE/_runs/audits/`` (:func:`sinks.lake.records.write_audit_record`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from common.durations import describe, rfc3339
from sinks.lake import records as run_records
from tools.audit import held
from tools.audit.compare import HourVerdict, failed, judge
from tools.audit.hours import CLEAN, hours_between, latest_results, settled
from tools.audit.okta_read import OktaAnswers, read_org
from transforms.selection import EventTypeSelection

MAX_THREADS = 8


def plan(settings, previous: list[dict]) -> tuple[dict, list]:
    """``({org host: (hours to audit, hours skipped as clean)}, hours not settled yet)``."""
    ready, waiting = settled(hours_between(settings.since, settings.until), settings.now, settings.settle)
    table = settings.iceberg.table if settings.iceberg else None
    plans = {}
    for org in settings.okta.orgs:
        latest = latest_results(previous, org.settings.org_url, org.event_types, table) if settings.skip_clean else {}
        skipped = [h for h in ready if latest.get(h) in CLEAN]
        plans[org.host] = ([h for h in ready if h not in skipped], skipped)
    return plans, waiting


def read_okta(settings, plans: dict) -> dict[str, OktaAnswers]:
    orgs = list(settings.okta.orgs)
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_THREADS, len(orgs))), thread_name_prefix="audit") as pool:
        found = pool.map(lambda org: read_org(org, plans[org.host][0]), orgs)
        return {org.host: answers for org, answers in zip(orgs, found)}


class Stores:
    """What the lake, the table and the dead letters hold for some hours of the audit's orgs."""

    def __init__(self, settings, answers: dict[str, OktaAnswers], hours: set):
        selections = [EventTypeSelection.parse(org.event_types) for org in settings.okta.orgs]

        def selected(event_type: str) -> bool:
            return any(selection(event_type) for selection in selections)

        self.lake = held.read_lake(settings.lake.root, hours, selected)
        self.iceberg = held.read_iceberg(settings.iceberg, hours, selected) if settings.iceberg else None
        absent = {uuid for answer in answers.values() for hour, okta in answer.hours.items() if hour in hours
                  for uuid in okta.uuids if not self._held(uuid, hour)}
        self.dead = held.read_dead_letters(settings.lake.dead_letter, absent)

    def _held(self, uuid: str, hour) -> bool:
        for store in (self.lake, self.iceberg):
            if store is not None and not any(uuid in uuids for (_, h, _), uuids in store.uuids.items() if h == hour):
                return False
        return True


def verdicts(settings, org, answers: OktaAnswers, stores: Stores, hours=None) -> list[HourVerdict]:
    selection = EventTypeSelection.parse(org.event_types)
    found = [judge(org.host, hour, okta, stores.lake, stores.iceberg, stores.dead, selection)
             for hour, okta in sorted(answers.hours.items()) if hours is None or hour in hours]
    if hours is None:
        found += [failed(hour, answers.error or "not read") for hour in answers.failed]
    return sorted(found, key=lambda v: v.hour)


def repair(settings, answers: dict[str, OktaAnswers], judged: dict[str, list[HourVerdict]], runner) -> dict:
    """Backfill every org's hours with missing events, judge them again; org host -> its repair runs."""
    from tools.audit.repair import repair_org

    runs: dict[str, list[dict]] = {}
    number = 1
    for org in settings.okta.orgs:
        broken = [v.hour for v in judged[org.host] if v.result == "missing"]
        if not broken:
            continue
        runs[org.host] = repair_org(settings, org, broken, runner, first=number)
        number += len(runs[org.host])
    if not runs:
        return runs
    hours = {v.hour for host in runs for v in judged[host] if v.result == "missing"}
    again = Stores(settings, {host: answers[host] for host in runs}, hours)
    for org in settings.okta.orgs:
        if org.host not in runs:
            continue
        after = {v.hour: v for v in verdicts(settings, org, answers[org.host], again, hours)}
        for position, verdict in enumerate(judged[org.host]):
            if verdict.hour in after:
                before = {u for t in verdict.types.values() for u in t.missing + t.iceberg_missing}
                still = {u for t in after[verdict.hour].types.values() for u in t.missing + t.iceberg_missing}
                after[verdict.hour].repaired = len(before - still)
                judged[org.host][position] = after[verdict.hour]
    return runs


def totals(found: list[HourVerdict]) -> dict:
    audited = [v for v in found if v.error is None]
    return {"hours_audited": len(audited), "clean": sum(v.result == "clean" for v in found),
            "missing_hours": sum(v.result == "missing" for v in found),
            "unexpected_hours": sum(v.result == "unexpected" for v in found),
            "repaired_hours": sum(v.result == "repaired" for v in found),
            "failed_hours": len(found) - len(audited), "okta_events": sum(v.total("okta") for v in audited),
            "missing": sum(v.missing for v in audited), "unexpected": sum(v.unexpected for v in audited),
            "dead_lettered": sum(v.total("dead_lettered") for v in audited),
            "repaired": sum(v.repaired for v in audited), "unreadable": sum(v.unreadable for v in audited),
            "doubled_rows": sum(v.doubled_rows for v in audited)}


def org_result(settings, org, answers: OktaAnswers, found: list[HourVerdict], skipped, waiting, runs) -> dict:
    audited = [v for v in found if v.error is None]
    okta = answers.as_dict()
    okta["requests_per_day"] = round(answers.requests * 24 / len(audited), 1) if audited else None
    return {
        "audit_id": settings.audit_id, "audited_at": rfc3339(settings.now), "lake": settings.lake.root,
        "org_url": org.settings.org_url, "org": org.host, "event_types": org.event_types,
        "filter": org.settings.filter, "iceberg_table": settings.iceberg.table if settings.iceberg else None,
        "settle": describe(settings.settle.total_seconds()),
        "requested": {"since": rfc3339(settings.since), "until": rfc3339(settings.until)},
        "status": "failed" if answers.error else "audited", "error": answers.error,
        "retryable": answers.retryable if answers.error else None,
        "okta": okta, "totals": totals(found), "repairs": runs,
        "skipped_clean": [rfc3339(h) for h in skipped], "not_settled": [rfc3339(h) for h in waiting],
        "hours": [v.as_dict() for v in found],
    }


def audit(settings, runner=None) -> tuple[dict, list[dict]]:
    """Run the audit: ``(the result as the JSON output shows it, exit_code included; the audit records found
    before it)``."""
    previous = run_records.read_all(settings.lake.root)["audits"]
    plans, waiting = plan(settings, previous)
    answers = read_okta(settings, plans)
    stores = Stores(settings, answers, {hour for found in answers.values() for hour in found.hours})
    judged = {org.host: verdicts(settings, org, answers[org.host], stores) for org in settings.okta.orgs}
    runs = repair(settings, answers, judged, runner) if settings.repair else {}
    orgs = []
    for org in settings.okta.orgs:
        result = org_result(settings, org, answers[org.host], judged[org.host], plans[org.host][1], waiting,
                            runs.get(org.host, []))
        name = f"{settings.audit_id}-{org.host.replace(':', '_')}"
        result["record"] = run_records.record_quietly(run_records.write_audit_record, settings.lake.root, name,
                                                      result)
        orgs.append(result)
    return {"audit_id": settings.audit_id, "lake": settings.lake.root,
            "iceberg_table": settings.iceberg.table if settings.iceberg else None,
            "requested": {"since": rfc3339(settings.since), "until": rfc3339(settings.until)},
            "settle": describe(settings.settle.total_seconds()), "audited_at": rfc3339(settings.now),
            "repair": settings.repair, "orgs": orgs, "exit_code": exit_code(orgs)}, previous


def exit_code(orgs: list[dict]) -> int:
    """1: events missing (or an org or a repair run failed for good); 75: an org or a repair run failed, and
    all of them may succeed if run again; 0: nothing missing (unexpected events are reported, not failed)."""
    if any(o["totals"]["missing"] for o in orgs):
        return 1
    failures = [bool(o["retryable"]) for o in orgs if o["status"] == "failed"]
    failures += [run["exit_code"] == 75 for o in orgs for run in o["repairs"] if run["exit_code"] != 0]
    if failures:
        return 75 if all(failures) else 1
    return 0
