"""One error family: every exception class of refold derives from `RefoldError` through its
package's class, and the command line maps each to its exit code in one place."""

from __future__ import annotations

import importlib
import inspect

import click
import pytest
from click.testing import CliRunner

from refold.cli import RefoldGroup
from refold.core import errors
from refold.core.errors import (
    AppError,
    ConfigError,
    ConsumerError,
    CoreError,
    KafkaFatalError,
    ModelError,
    ProducerError,
    RefoldError,
    SchemaError,
    exit_code,
)
from tests.unit.test_layers import layer, modules

PACKAGE_ERROR = {"core": CoreError, "models": ModelError, "consumers": ConsumerError,
                 "producers": ProducerError, "app": AppError}


def exception_classes() -> list[tuple[str, type[BaseException]]]:
    """(module, class) of every exception class defined in refold's packages."""
    out = []
    for name in modules():
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == name:
                out.append((name, cls))
    return out


def test_there_are_exception_classes_to_check() -> None:
    names = {cls.__name__ for _, cls in exception_classes()}
    assert {"SnapshotError", "Fenced", "DeliveryError", "BrokerError", "ConfigError"} <= names


@pytest.mark.parametrize(("module", "cls"), exception_classes(),
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_every_exception_is_of_its_packages_family(module: str, cls: type) -> None:
    assert issubclass(cls, RefoldError)
    if module not in ("refold.core.errors", "models.errors"):  # where the family is defined
        assert issubclass(cls, PACKAGE_ERROR[layer(module)]), cls.__mro__


def test_exit_codes() -> None:
    from consumers.txn import Fenced
    from models.snapshot import SnapshotError
    from producers.sdk import DeliveryError

    assert exit_code(ConfigError("bad")) == 2
    assert exit_code(SchemaError("user_id", "missing")) == errors.EXIT_DATA
    assert exit_code(SnapshotError("truncated")) == errors.EXIT_DATA  # a ModelError
    assert exit_code(Fenced("fenced")) == exit_code(KafkaFatalError("x")) == 69
    assert exit_code(DeliveryError([("k", "timed out")])) == 1
    assert exit_code(RuntimeError("a bug")) == 1


def test_bad_input_errors_stay_value_errors() -> None:
    """Callers (and other libraries) that catch ValueError keep working."""
    for cls in (ConfigError, SchemaError, ModelError):
        assert issubclass(cls, ValueError)


@pytest.mark.parametrize(("error", "code"), [
    (KafkaFatalError("fenced: another worker runs with transactional.id 'x'"), 69),
    (ConfigError("setting 'k': cannot read 'x' as int"), 2),
    (AppError("the broker did not start"), 1),
    (errors.NotFound("no recommendations for user 'u9'"), errors.EXIT_NOT_FOUND),
])
def test_a_command_that_raises_exits_with_one_line_and_the_errors_code(
        error: RefoldError, code: int) -> None:
    @click.group(cls=RefoldGroup)
    def group() -> None:
        pass

    @group.command("work")
    def work() -> None:
        raise error

    result = CliRunner().invoke(group, ["work"])
    assert result.exit_code == code
    assert result.output.strip() == f"refold work: {error}"
