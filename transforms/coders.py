"""Coders for the batch element types.

Beam samples elements to estimate PCollection sizes. Without a coder of its
own, a batch (1000 events as nested dicts, or an Arrow table) is encoded by
the generic coder just to be measured, which cost more than the parsing
itself in profiles. These coders pickle (Arrow tables pickle as their
buffers) and estimate size in O(1).
"""

from __future__ import annotations

import pickle

import apache_beam as beam

from transforms.records import EventBatch, RawBatch, RowBatch, RowBatches


class _BatchCoder(beam.coders.Coder):
    def encode(self, value) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes):
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value) -> int:
        return value.estimated_bytes()

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


class RawBatchCoder(_BatchCoder):
    def to_type_hint(self):
        return RawBatch


class EventBatchCoder(_BatchCoder):
    def to_type_hint(self):
        return EventBatch


class RowBatchCoder(_BatchCoder):
    def to_type_hint(self):
        return RowBatch


beam.coders.registry.register_coder(RawBatch, RawBatchCoder)
beam.coders.registry.register_coder(EventBatch, EventBatchCoder)
beam.coders.registry.register_coder(RowBatch, RowBatchCoder)


class RowBatchesCoder(_BatchCoder):
    def to_type_hint(self):
        return RowBatches


beam.coders.registry.register_coder(RowBatches, RowBatchesCoder)
