"""The streaming core, without Beam pipeline machinery: settings, the open window, the loops, the commit step.

Used by the local loops (:mod:`pipeline.streaming`) and by the Dataflow DoFns
(:mod:`streaming.beam`, :mod:`streaming.beam`) alike, so a window is
decoded, deduped, committed, counted and reported by the same code on every
runner. Nothing here builds a PTransform or a DoFn.
"""
