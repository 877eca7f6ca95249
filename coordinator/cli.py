"""The ``finishline`` command.

Each subcommand lives in the module that owns its concept, is registered by its feature
(``coordinator.registry``) and is imported only when used, so ``finishline simulate`` does
not pay for Docker or Grafana imports. Bad input ends as one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import sys

import click

from coordinator import registry


class LazyGroup(click.Group):
    """A click group whose commands (registered by each feature) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(registry.commands())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        ref = registry.commands().get(cmd_name)
        if ref is None:
            return None
        command: click.Command = ref.load()
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="finishline")
def cli() -> None:
    """finishline: load-test LLM inference endpoints on your traffic, in your container."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: turn user errors into one clear line and exit code 2."""
    from pydantic import ValidationError

    from loadgen.errors import UserError, describe_validation_error

    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("finishline: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"finishline: {exc.format_message()}", err=True)
        sys.exit(2)
    except UserError as exc:
        click.echo(f"finishline: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:
        click.echo(f"finishline: {describe_validation_error(exc)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("finishline: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
