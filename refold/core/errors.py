"""refold's one error family, and the exit code of each error: the one place they are mapped.

Every exception refold raises on purpose derives from `RefoldError`, through the class of the
package that raises it (`CoreError`, `ModelError`, `ConsumerError`, `ProducerError`,
`AppError`); the errors of bad input keep `ValueError` as a second base. The root and
`ModelError` are defined in `models.errors`, so that the pure `models` package imports nothing of
refold's other layers; this module re-exports them and imports nothing else, so every layer
above `models` may import it.

The command line turns a `RefoldError` that reaches it into one line and `exit_code(exc)`:

>>> exit_code(ConfigError("setting 'k': cannot read 'x' as int"))
2
>>> exit_code(KafkaFatalError("fenced")), exit_code(ModelError("NaN factors"))
(69, 65)
>>> exit_code(NotFound("no recommendations for user 'u9'"))
67
>>> exit_code(AppError("anything else"))
1
"""

from __future__ import annotations

from models.errors import ModelError, RefoldError

# -- one class per package ------------------------------------------------------------------


class CoreError(RefoldError):
    """`refold.core`: configuration, schemas, Kafka clients, topics."""


class ConsumerError(RefoldError):
    """`consumers`: the worker, the refitter and their Kafka plumbing."""


class ProducerError(RefoldError):
    """`producers`: the SDK, dataset loaders, replay and the synthetic world."""


class AppError(RefoldError):
    """The app: the CLI, benchmarks, evaluation, reports, the demo and the local broker."""


# -- the core's own errors (the other packages define theirs where they raise them) ---------


class ConfigError(CoreError, ValueError):
    """A setting has an unknown name or a value of the wrong type."""


class SchemaError(CoreError, ValueError):
    """A message does not satisfy the contract; `field` names where, `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class KafkaFatalError(CoreError):
    """A Kafka client cannot go on (authentication failed, fenced, or a fatal librdkafka error)."""


# -- kinds any package may raise --------------------------------------------------------------


class NotFound(RefoldError, LookupError):
    """What was asked for by name is not there (`refold recs USER` for a user without a list)."""


# -- exit codes -------------------------------------------------------------------------------

EXIT_USAGE = 2
"""A bad flag, setting or parameter (click's usage errors exit 2 as well)."""
EXIT_DATA = 65
"""Input data that cannot be used (sysexits' EX_DATAERR)."""
EXIT_NOT_FOUND = 67
"""What was asked for by name is not there, e.g. a user without a list (sysexits' EX_NOUSER)."""
EXIT_UNAVAILABLE = 69
"""Kafka cannot be used: fatal client error, fenced, authentication (EX_UNAVAILABLE)."""

EXIT_CODES: dict[type[BaseException], int] = {
    ConfigError: EXIT_USAGE,
    SchemaError: EXIT_DATA,
    ModelError: EXIT_DATA,
    KafkaFatalError: EXIT_UNAVAILABLE,
    NotFound: EXIT_NOT_FOUND,
    RefoldError: 1,
}
"""Exit code by class: an error gets the code of the first class of its MRO listed here, so a
package's errors inherit their package's code, and a subclass of `KafkaFatalError` (such as
`consumers.txn.Fenced`) is a Kafka failure wherever it is defined."""


def exit_code(exc: BaseException) -> int:
    """The process exit code for `exc`: that of its most specific listed class, 1 otherwise."""
    for kind in type(exc).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return 1
