"""KEY=VALUE flags are read one way across the CLI (`refold.cli.typed_pairs`)."""

import click
import pytest
from click.testing import CliRunner

from refold.cli import cli, typed_pairs


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
