"""The ACLs of each role: what `refold acls` prints, and what the README's table says."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from refold.acls import ROLES, role_acls
from refold.cli import cli
from refold.cli import commands as _commands  # noqa: F401  (registers the commands)
from refold.core.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_refold_acls_prints_kafka_acls_arguments_for_the_settings():
    result = CliRunner().invoke(cli, ["--topic-prefix", "shop.", "acls", "worker",
                                      "--principal", "User:w"], env={})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(role_acls(Settings(topic_prefix="shop."), "worker"))
    assert "--add --allow-principal 'User:w' --operation Write --topic 'shop.recommendations'" in (
        lines)
    assert ("--add --allow-principal 'User:w' --operation Write --transactional-id "
            "'shop.refold-foldin-' --resource-pattern-type prefixed") in lines
    bad = CliRunner().invoke(cli, ["acls", "worker", "--principal", "w"], env={})
    assert bad.exit_code == 2 and "User:NAME" in bad.output


def test_the_readme_table_is_what_the_code_grants():
    settings = Settings(bridge_source_topic="shop.clicks")
    for role in ROLES:
        row = re.search(rf"^\| `{role}` \| (.+) \|$", README, flags=re.M)
        assert row, role
        assert row[1] == ", ".join(f"`{a}`" for a in role_acls(settings, role)), role


def test_every_topic_a_role_names_is_a_topic_of_the_deployment():
    from refold.core.topics import topic_specs

    settings = Settings()
    topics = {spec.name for spec in topic_specs(settings)}
    for role in ROLES:
        for acl in role_acls(settings, role):
            if acl.resource == "Topic" and acl.pattern == "LITERAL":
                assert acl.name in topics, (role, acl)
