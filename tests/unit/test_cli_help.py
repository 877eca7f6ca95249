"""Every command's ``--help``: it exits 0, names an example of the command in use, and the top
level lists the exit codes as ``coordinator.results.outcome.ExitCode`` defines them."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from coordinator.cli import cli
from coordinator.results.outcome import EXIT_MEANINGS, ExitCode


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = list(_commands(cli))


def test_every_command_is_listed() -> None:
    assert {"run", "compare", "baseline", "serve", "worker", "simulate", ("baseline", "save")} <= {
        c[0] if len(c) == 1 else c for c in COMMANDS
    }


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_shows_an_example(path: tuple[str, ...]) -> None:
    done = CliRunner().invoke(cli, [*path, "--help"])
    assert done.exit_code == 0, done.output
    examples = done.output.partition("Example")[2]
    assert examples, f"finishline {' '.join(path)} --help has no example"
    assert f"finishline {path[0]}" in examples, done.output  # the example runs this command


def test_top_level_help_lists_every_exit_code() -> None:
    done = CliRunner().invoke(cli, ["--help"])
    assert done.exit_code == 0
    codes = " ".join(done.output.partition("Exit codes:")[2].split())
    for code in ExitCode:
        assert f"{int(code)} {code.name.lower().replace('_', ' ')}" in codes, (code, codes)


def test_run_help_says_what_each_exit_code_means() -> None:
    done = CliRunner().invoke(cli, ["run", "--help"])
    assert done.exit_code == 0 and set(EXIT_MEANINGS) == set(ExitCode)
    lines = [" ".join(line.split()) for line in done.output.splitlines()]
    for code, meaning in EXIT_MEANINGS.items():
        assert f"{int(code)} {meaning}" in lines, (code, done.output)
