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

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The examples, then the exit codes as ``coordinator.results.outcome`` defines them."""
        super().format_epilog(ctx, formatter)
        from coordinator.results.outcome import ExitCode

        codes = ", ".join(f"{int(code)} {code.name.lower().replace('_', ' ')}" for code in ExitCode)
        with formatter.section("Exit codes"):
            formatter.write_text(codes)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        ref = registry.commands().get(cmd_name)
        if ref is None:
            return None
        command: click.Command = ref.load()
        return command


EPILOG = """
\b
Examples:
  finishline run examples/quickstart.yaml            # a benchmark with its report
  finishline run examples/quickstart.yaml --web      # the same, started from Locust's web UI
  finishline baseline save runs/quickstart-... --name main
  finishline run examples/quickstart.yaml --baseline main   # exit 1 on a regression

Documentation: docs/ (README.md has a tour).
"""


@click.group(cls=LazyGroup, epilog=EPILOG)
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
