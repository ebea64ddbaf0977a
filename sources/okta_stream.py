"""Tail the System Log continuously: ``--streaming --source=okta``.

A polling chain is one sequence of requests (each ``next`` link comes from the
previous page), so one org is tailed by one worker: a ``PeriodicImpulse``
ticks every second, all ticks share one key, and a stateful DoFn (Beam runs
one key serially, on any runner) does the work:

- it polls from the cursor until an empty page, then waits
  ``--poll_interval`` before the next poll, whatever the runner does with
  the ticks (Beam's local runner does not honour poll intervals reliably);
  every request also goes through the org's rate governor;
- each page is decoded, validated, selected and flattened by the same
  functions as the batch path, deduped against the uuids kept within
  ``--dedupe_horizon``, and buffered;
- when the ``--window`` (processing time) a buffer belongs to is over, the
  buffer is committed to the lake as that window's files
  (:func:`sinks.window_commit.commit_window`), and only then is the cursor
  of the last page in the buffer stored in ``--state``.

The tail itself has no Beam in it (:class:`streaming.okta_tail.OktaTail`);
this module only puts it inside a stateful DoFn for Dataflow.

A crash or a stop loses at most the uncommitted buffer, whose events the next
run reads again from the stored cursor: nothing is lost and the lake's
insert-if-absent drops what was already written. Events persisted late (Okta
orders the polling chain by persistence time) arrive in the window they are
polled in and land in the partition of their own ``published`` date.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.transforms import userstate
from apache_beam.transforms.periodicsequence import PeriodicImpulse

from sources.okta_config import OktaSettings
from streaming.okta_tail import TICK_SECONDS, OktaTail, OrgTail, org_tail_settings
from streaming.settings import TailSettings


class _TailFn(beam.DoFn):
    """:class:`OktaTail` inside a stateful DoFn: one key per org, so Beam runs it serially on any runner."""

    POLLS = userstate.ReadModifyWriteStateSpec("polls", VarIntCoder())

    def __init__(self, settings: OktaSettings, tail: TailSettings):
        self.settings, self.tail = settings, tail

    def setup(self):
        self._tail = OktaTail(self.settings, self.tail)

    def process(self, element, polls=beam.DoFn.StateParam(POLLS)):
        pages = self._tail.tick()
        if pages:
            polls.write((polls.read() or 0) + pages)

    def teardown(self):
        self._tail.close()


class TailSystemLogToLake(beam.PTransform):
    """The whole Okta streaming job: ticks -> poll, flatten, dedupe -> per-window commits and cursor."""

    def __init__(self, settings: OktaSettings, tail: TailSettings):
        super().__init__()
        self.settings, self.tail = settings, tail

    def expand(self, pbegin):
        return (
            pbegin
            | "Ticks" >> PeriodicImpulse(fire_interval=TICK_SECONDS)
            | "OneKeyPerOrg" >> beam.Map(lambda tick, org: (org, tick), self.settings.org_url)
            | "TailAndCommit" >> beam.ParDo(_TailFn(self.settings, self.tail))
        )


class _OrgsTailFn(beam.DoFn):
    """Many orgs (``--orgs``): an :class:`OrgTail` per org, ticked under that org's key (keys run in parallel)."""

    POLLS = userstate.ReadModifyWriteStateSpec("polls", VarIntCoder())

    def __init__(self, orgs, tail: TailSettings):
        self.orgs, self.tail = list(orgs), tail

    def setup(self):
        self._tails = {org.host: OrgTail(org, org_tail_settings(self.tail, org, number))
                       for number, org in enumerate(self.orgs)}

    def process(self, element, polls=beam.DoFn.StateParam(POLLS)):
        host, _ = element
        pages = self._tails[host].tick()
        if pages:
            polls.write((polls.read() or 0) + pages)

    def teardown(self):
        for tail in self._tails.values():
            tail.close()


class TailOrgsToLake(beam.PTransform):
    """The many-org streaming job: each tick goes to every org's key; each org polls, commits and stores its own."""

    def __init__(self, orgs, tail: TailSettings):
        super().__init__()
        self.orgs, self.tail = list(orgs), tail

    def expand(self, pbegin):
        hosts = [org.host for org in self.orgs]
        return (
            pbegin
            | "Ticks" >> PeriodicImpulse(fire_interval=TICK_SECONDS)
            | "OneKeyPerOrg" >> beam.FlatMap(lambda tick, hosts: [(host, tick) for host in hosts], hosts)
            | "TailAndCommit" >> beam.ParDo(_OrgsTailFn(self.orgs, self.tail))
        )
