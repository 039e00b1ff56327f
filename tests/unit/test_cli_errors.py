"""One family of errors, mapped to one line and an exit code in one place: the CLI's root."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from pipelines.avro.schemas import SchemaError
from pipelines.backfill import BackfillError
from pipelines.cli.output import SeatflowGroup
from pipelines.connect import ConnectError, ConnectUnreachableError
from pipelines.errors import SeatflowError
from pipelines.host import HostError
from pipelines.kafka.admin import TopicLayoutError
from pipelines.processor.config import OffsetsLostError, ProcessorError
from pipelines.stack import StackError

pytestmark = pytest.mark.unit


def _app(error: BaseException) -> typer.Typer:
    app = typer.Typer(cls=SeatflowGroup)
    sub = typer.Typer()
    app.add_typer(sub, name="group")

    @sub.command()
    def boom() -> None:
        raise error

    @app.command()
    def ok() -> None:
        typer.echo("fine")

    return app


@pytest.mark.parametrize("cls", [StackError, HostError, ConnectError, SchemaError, ProcessorError,
                                 OffsetsLostError, BackfillError, TopicLayoutError])
def test_every_operation_error_is_a_seatflow_error(cls: type) -> None:
    assert issubclass(cls, SeatflowError)


@pytest.mark.parametrize(("error", "code", "line"), [
    (HostError("the database refused: role x"), 1, "error: the database refused: role x\n"),
    (ConnectUnreachableError("Kafka Connect is not reachable"), 3,
     "error: Kafka Connect is not reachable\n"),
    (BackfillError("event 9 does not exist"), 2, "error: event 9 does not exist\n"),
    (StackError("did not start", service="kafka"), 1, "error: kafka: did not start\n"),
    (TimeoutError("not caught up after 600 s"), 1, "error: not caught up after 600 s\n"),
])
def test_an_error_from_a_nested_command_is_one_line_and_its_exit_code(
        error: BaseException, code: int, line: str) -> None:
    result = CliRunner().invoke(_app(error), ["group", "boom"])
    assert result.exit_code == code
    assert result.output == line


def test_a_stack_error_shows_the_log_tail_before_its_line() -> None:
    error = StackError("exited while starting", service="connect", log_tail="ERROR no plugin\n")
    result = CliRunner().invoke(_app(error), ["group", "boom"], terminal_width=60)
    assert result.exit_code == 1
    assert "last lines of the connect log" in result.output
    assert result.output.index("ERROR no plugin") < result.output.index(
        "error: connect: exited while starting")


def test_other_exceptions_are_not_swallowed() -> None:
    result = CliRunner().invoke(_app(KeyError("bug")), ["group", "boom"])
    assert isinstance(result.exception, KeyError)
    assert CliRunner().invoke(_app(KeyError("bug")), ["ok"]).output == "fine\n"
