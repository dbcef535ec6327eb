"""KEY=VALUE flags are read one way across the CLI (`refold.cli.typed_pairs`), and --fold-in
settings are checked one way (`refold.cli.fold_in_changes`)."""

import click
import pytest
from click.testing import CliRunner

from refold.cli import cli, typed_pairs
from refold.cli import commands as _commands  # noqa: F401  (registers the commands)


def test_values_are_json_when_they_parse_and_stripped_strings_otherwise():
    got = typed_pairs(("k=10", " decay = exp ", "on=true", "none=null", "name=a=b"))
    assert got == {"k": 10, "decay": "exp", "on": True, "none": None, "name": "a=b"}


@pytest.mark.parametrize("bad", ["novalue", "=3", " =3"])
def test_a_pair_without_a_key_is_refused_and_names_its_flag(bad):
    with pytest.raises(click.BadParameter, match="expected KEY=VALUE") as err:
        typed_pairs((bad,), "--fold-in")
    assert err.value.param_hint == "--fold-in"


def test_bench_pipeline_refuses_a_bad_fold_in_pair_before_it_needs_a_broker():
    out = CliRunner().invoke(cli, ["--bootstrap-servers", "127.0.0.1:1", "bench", "pipeline",
                                   "--dataset", "synth", "--fold-in", "session_weight"])
    assert out.exit_code == 2, out.output
    assert "--fold-in" in out.output and "expected KEY=VALUE" in out.output


BAD_SETTINGS = [("nonsense=1", "unknown fold-in setting"),
                ("session_weight=x", "session_weight='x': expected float"),
                ("exploration=bogus", "unknown exploration policy")]


@pytest.mark.parametrize(("pair", "reason"), BAD_SETTINGS)
@pytest.mark.parametrize("command", [
    ["bench", "pipeline", "--dataset", "synth"],  # before it looks for a broker or fits
    ["consume", "--fit-from", "/nonexistent/events.csv"],  # before it reads or fits anything
    ["evaluate", "--dataset", "synth", "--synth-events", "50"],  # before it reads the data
])
def test_every_command_refuses_a_bad_fold_in_setting_before_it_works(command, pair, reason):
    """One check (`refold.cli.fold_in_changes`) for every command's --fold-in: an unknown
    setting or a bad value is a usage error naming the flag, given before any work starts
    (no broker here: the bootstrap address is closed)."""
    out = CliRunner().invoke(cli, ["--bootstrap-servers", "127.0.0.1:1", *command,
                                   "--fold-in", pair])
    assert out.exit_code == 2, out.output
    assert "--fold-in" in out.output and reason in out.output
