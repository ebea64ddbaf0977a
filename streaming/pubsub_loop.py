"""Consume a Pub/Sub subscription on this machine: ``--streaming --source=pubsub`` on the local runner.

On Dataflow the Pub/Sub path is Beam's ``ReadFromPubSub`` (:mod:`sources.pubsub.beam`,
:mod:`streaming.beam`). On the local runner it is this loop, because Beam's
local streaming runner, measured here (Beam 2.77), acknowledges every message
as soon as it pulls it (a stopped or killed process loses its open window),
pulls 10 messages per bundle (124 events/s at most on 2 cores, and ~90% of a
core at 20 events/s, most of it Beam inspecting DoFn signatures per bundle),
and grows its process about 1 MB a minute. The loop instead:

- pulls up to 1,000 messages at a time with ``google-cloud-pubsub``;
- runs every message through the batch path's code (:class:`WindowBuffer`:
  decode, unwrap the four message forms, validate, select, flatten, dedupe
  within ``--dedupe_horizon``), a bad message becoming a dead letter with its
  message id, attributes and publish time;
- holds the messages of the open ``--window`` unacknowledged, renewing a
  30-second lease on them (their ack deadline) until the window is committed,
  so after a crash Pub/Sub delivers them again within 30 s;
- commits the window to the lake (and BigQuery, and as one Iceberg snapshot
  with ``--iceberg_table``) and only then acknowledges its messages.

A crash at any point leaves the window's messages unacknowledged: Pub/Sub
delivers them again and the lake's insert-if-absent keeps what was already
committed, so nothing is lost and nothing is written twice.
``--pubsub_reader=beam`` runs Beam's graph on the local runner instead.
"""

from __future__ import annotations

import sys
import time

from common.metrics import counter, measure
from sources.pubsub.messages import message_batch
from streaming.settings import PubSubSettings
from streaming.window_buffer import WindowBuffer

MAX_MESSAGES = 1000
ACK_BATCH = 1000  # ack ids per acknowledge/modify request (well under the 512 KB request limit)
LEASE_SECONDS = 30  # ack deadline given to held messages, renewed while their window is open
RENEW_BEFORE = 15  # renew when a lease has less than this left (a tick takes at most LONGEST_PULL)
LONGEST_PULL = 5.0  # seconds one pull may wait for messages


class PubSubTail:
    """``tick()`` in a loop: commit the window that ended (then ack it), extend leases, pull once."""

    def __init__(self, settings: PubSubSettings, client=None, clock=time.time):
        if client is None:
            from google.cloud import pubsub_v1

            client = pubsub_v1.SubscriberClient()
        self.settings, self._client, self._clock = settings, client, clock
        self._buffer = WindowBuffer(settings.window, clock)
        self._held: list[str] = []  # ack ids of the open window's messages
        self._leased_until = 0.0
        self._acked = counter("pubsub_messages_acked")

    def tick(self) -> int:
        """One step; returns the number of messages pulled."""
        now = self._clock()
        if self._buffer.ended(now):
            self._flush()
        window_end = self._buffer.open(now)
        if self._held and now > self._leased_until - RENEW_BEFORE:
            self._leased_until = self._lease(self._held)
        received = self._pull(max(0.5, min(LONGEST_PULL, window_end - now)))
        if received:
            ack_ids = [message.ack_id for message in received]
            leased_until = self._lease(ack_ids)
            if not self._held:
                self._leased_until = leased_until
            self._held += ack_ids
            self._buffer.take(*(message_batch(message.message, self.settings.subscription)
                                for message in received))
            if self._buffer.full:  # a backlog: commit (and acknowledge) what is held, then go on in this window
                self._flush()
                self._buffer.open(now)
        return len(received)

    def _pull(self, wait: float) -> list:
        from google.api_core import exceptions

        try:
            response = self._client.pull(
                request={"subscription": self.settings.subscription, "max_messages": MAX_MESSAGES},
                timeout=wait, retry=None)
        except exceptions.DeadlineExceeded:  # nothing to pull: Pub/Sub answered all the same
            measure("source_reached", self._clock())
            return []
        measure("source_reached", self._clock())
        return list(response.received_messages)

    def _lease(self, ack_ids: list[str]) -> float:
        """Keep messages unacknowledged and undelivered to anyone else for LEASE_SECONDS; returns until when."""
        for start in range(0, len(ack_ids), ACK_BATCH):
            self._client.modify_ack_deadline(request={
                "subscription": self.settings.subscription, "ack_ids": ack_ids[start:start + ACK_BATCH],
                "ack_deadline_seconds": LEASE_SECONDS})
        return self._clock() + LEASE_SECONDS

    def _flush(self) -> None:
        """Commit the finished window, then (and only then) acknowledge its messages."""
        self._buffer.commit("pubsub")
        held, self._held = self._held, []
        self._buffer.reset(None)
        # An acknowledgement that fails now only means Pub/Sub delivers those messages again after their
        # lease: the uuid horizon (or the commit's insert-if-absent) drops them as duplicates.
        for start in range(0, len(held), ACK_BATCH):
            chunk = held[start:start + ACK_BATCH]
            self._client.acknowledge(request={"subscription": self.settings.subscription, "ack_ids": chunk})
            self._acked.inc(len(chunk))

    def close(self) -> None:
        # The open window is neither committed nor acknowledged: Pub/Sub delivers it again.
        self._buffer.drop()
        self._held = []


def run_locally(settings: PubSubSettings, stop_after: float | None = None, clock=time.monotonic) -> None:
    """Run :class:`PubSubTail` until stopped (Ctrl-C, SIGTERM or ``stop_after`` seconds)."""
    from google.api_core import exceptions

    tail = PubSubTail(settings)
    deadline = None if stop_after is None else clock() + stop_after
    try:
        while deadline is None or clock() < deadline:
            try:
                tail.tick()
            except (exceptions.ServiceUnavailable, exceptions.InternalServerError, exceptions.Aborted,
                    exceptions.TooManyRequests, exceptions.DeadlineExceeded) as exc:
                # Pub/Sub is unreachable for now: keep the window (its leases run on) and try again.
                print(f"warning: Pub/Sub: {type(exc).__name__}; pulling again in 1 s", file=sys.stderr, flush=True)
                time.sleep(1.0)
    finally:
        tail.close()
