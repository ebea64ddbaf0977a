"""The one base of the project's errors: :class:`LakeError`, fatal or retryable, and always picklable.

Every exception class of the installed packages derives from it (besides the standard
class its callers catch: ``ValueError``, ``RuntimeError``...), so the run's failure line and
exit code (:mod:`pipeline.failures`) know the project's errors by the base, not by a list.

- ``retryable``: whether running again as is may succeed (the outage, the throttling, the
  killed process is likely gone by then) or not (bad configuration, bad data, a refused
  credential: it fails the same way until someone fixes it). The class says it (False by
  default); a class whose verdict depends on the case sets it on the instance (an
  :class:`~okta_client.errors.OktaApiError` from its HTTP status).
- :meth:`LakeError.retryable_from_message`: the same verdict from the message alone, for an
  error known only by its class name and message (a local runner hands a worker's error back
  as traceback text, a many-org run keeps an org's error as a line).
- Pickling: on Dataflow a worker's error is pickled to reach the runner. Python's default
  rebuilds an exception by calling ``cls(*args)``, which fails for any ``__init__`` with other
  parameters (the real error is then replaced by a ``TypeError``); :meth:`LakeError.__reduce__`
  rebuilds without calling ``__init__``: the class, its ``args``, its attributes. An unpickled
  error equals the original (same class, args and attributes).
"""

from __future__ import annotations

import copyreg


class LakeError(Exception):
    """An error of the pipeline; ``retryable`` says whether rerunning as is may succeed."""

    retryable: bool = False

    @classmethod
    def retryable_from_message(cls, message: str) -> bool:
        """Whether an error of this class with this message is retryable (the class's verdict by default)."""
        return cls.retryable

    def __reduce__(self):
        # copyreg.__newobj__ is cls.__new__(cls, *args): __init__ is not called; the attributes come back as state.
        return copyreg.__newobj__, (type(self), *self.args), dict(self.__dict__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LakeError):
            return NotImplemented
        return type(self) is type(other) and self.args == other.args and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        # The message, not the args: an argument may be an unhashable JSON value (WrongType's).
        return hash((type(self), str(self)))


def error_classes() -> list[type[LakeError]]:
    """:class:`LakeError` and every subclass of it imported so far (theirs too), in a stable order."""
    found: dict[type, None] = {LakeError: None}
    pending = [LakeError]
    while pending:
        for subclass in pending.pop(0).__subclasses__():
            if subclass not in found:
                found[subclass] = None
                pending.append(subclass)
    return list(found)
