"""docs/commands.md is the CLI's own table: it fails here when a command or option changes and the
page was not regenerated (``python -m edgeport.cli_docs``). No TensorFlow, well under a second."""
from __future__ import annotations

from edgeport import cli, cli_docs
from edgeport.export.targets import TARGETS, bundle_model


def test_docs_commands_md_is_what_the_generator_writes():
    current = cli_docs.DOCS.read_text()
    assert cli_docs.render(current) == current, "docs/commands.md is out of date: run python -m edgeport.cli_docs"
    assert cli_docs.main(["--check"]) == 0


def test_every_command_of_the_cli_has_its_row():
    table = cli_docs.DOCS.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `edgeport ")]
    assert len(rows) == len(cli.COMMANDS)
    for name, (target, help_) in cli.COMMANDS.items():
        assert any(row.startswith(f"| `edgeport {name}") and help_ in row for row in rows), name
        assert target.replace(":", ".") in table


def test_bundle_help_lists_every_target_of_the_registry():
    text = cli.build_parser(bundle_model, "edgeport bundle").format_help()
    for target in TARGETS:
        assert target in text, target

