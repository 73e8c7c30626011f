"""The ``flipkd`` command: one parser offering the serving side's and the training side's subcommands.

Building the parser imports neither torch nor any model code (``flipkd --help`` and ``flipkd healthcheck``
stay fast); each subcommand imports what it needs when it runs. A single-valued option given twice is an
error, never a silent override.
"""

from __future__ import annotations

import argparse
import sys

from flipkd.service import commands as service_commands
from flipkd.training import commands as training_commands


class StoreOnce(argparse._StoreAction):
    """``store`` that refuses a second occurrence of the same option in one command line."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        # Until the option is seen the namespace holds the default object itself.
        if option_string is not None and getattr(namespace, self.dest, None) is not self.default:
            parser.error(f"{'/'.join(self.option_strings)} given more than once")
        super().__call__(parser, namespace, values, option_string)


class FlipkdParser(argparse.ArgumentParser):
    """ArgumentParser whose plain ``store`` options (its subcommands' too) accept one occurrence."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, StoreOnce)
        self.register("action", "store", StoreOnce)


def build_parser() -> argparse.ArgumentParser:
    parser = FlipkdParser(prog="flipkd", description="Flipped knowledge distillation for text matching: "
                          "provisioning, teachers, distillation, baselines, evaluation, serving.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    commands = parser.add_subparsers(dest="command", required=True)
    service_commands.register(commands)
    training_commands.register(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.run(args)
    except (FileNotFoundError, ValueError, RuntimeError, KeyError) as error:
        print(f"flipkd {args.command}: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
