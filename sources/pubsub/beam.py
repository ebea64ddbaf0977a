"""Read a Pub/Sub subscription (Beam's ``ReadFromPubSub``) as ``RawBatch`` elements, one per message.

This is the Dataflow reader (and ``--pubsub_reader=beam`` locally); the local
runner's default is the loop in :mod:`streaming.pubsub_loop`, which shares
:func:`message_batch` with it.

A message may hold one LogEvent, a JSON array of them, an Okta Event Hook
envelope (``data.events[]``) or an AWS EventBridge envelope from Okta Log
Streaming (the event is ``detail``): the shared decoder unwraps all four, so
nothing here parses JSON. Every dead letter of a message carries its message
id and attributes. A bad message is acknowledged like any other (it is in the
dead-letter output, not redelivered forever).
"""

from __future__ import annotations

import apache_beam as beam

from sources.pubsub.messages import message_batch
from transforms import beam as batch_coders  # noqa: F401  (registers the batch coders)
from transforms.records import RawBatch


class ReadPubSubBatches(beam.PTransform):
    def __init__(self, subscription: str, id_label: str | None = None, timestamp_attribute: str | None = None):
        super().__init__()
        self.subscription, self.id_label, self.timestamp_attribute = subscription, id_label, timestamp_attribute

    def expand(self, pbegin):
        subscription = self.subscription
        return (
            pbegin
            | "ReadFromPubSub" >> beam.io.ReadFromPubSub(
                subscription=subscription, with_attributes=True, id_label=self.id_label or None,
                timestamp_attribute=self.timestamp_attribute or None)
            | "ToRawBatch" >> beam.Map(message_batch, subscription).with_output_types(RawBatch)
        )
