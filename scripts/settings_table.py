"""Print the service settings as a markdown table, generated from ``flipkd.service.settings.Settings``.

One row per field: environment variable, type (with its bounds), default and the field's description.
``--write`` replaces the table in docs/service.md between the marker comments; ``--check`` exits 1 when
the table there differs from the generated one. ``tests/test_docs.py`` runs the same check.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path

from pydantic.fields import FieldInfo

from flipkd.service.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SERVICE_DOC = REPO / "docs" / "service.md"
START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
ENV_PREFIX = Settings.model_config.get("env_prefix", "")

# annotated_types constraint class -> symbol shown in the type column
BOUNDS = {"Ge": ">=", "Gt": ">", "Le": "<=", "Lt": "<"}


def _type_name(annotation: object) -> str:
    """The type column: ``int``, ``path``, `` `truncate` or `reject` ``, ``str, optional``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " or ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        name = " or ".join(_type_name(arg) for arg in args)
        return f"{name}, optional" if len(args) < len(typing.get_args(annotation)) else name
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    parts = []
    for constraint in field.metadata:
        kind = type(constraint).__name__
        if kind in BOUNDS:  # Ge(ge=1), Le(le=1), ...: the value sits in the lower-cased attribute
            parts.append(f"{BOUNDS[kind]} {getattr(constraint, kind.lower())}")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    """The markdown table of every ``Settings`` field, in declaration order, ending with a newline."""
    rows = ["| environment variable | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        kind = _type_name(field.annotation)
        bounds = _bounds(field)
        if bounds:
            kind = f"{kind} ({bounds})"
        cells = [f"`{ENV_PREFIX}{name.upper()}`", kind, _default(field), field.description or ""]
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def current_table(text: str) -> str:
    """What ``text`` holds between the markers (without the newlines next to them)."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"expected one {START} ... {END} block")
    inner = text[text.index(START) + len(START):text.index(END)]
    return inner.strip("\n") + "\n"


def with_table(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    current_table(text)  # validates the markers
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"update the table in {SERVICE_DOC.name}")
    action.add_argument("--check", action="store_true", help="exit 1 when the table there is out of date")
    args = parser.parse_args(argv)
    table = settings_table()
    if not (args.write or args.check):
        sys.stdout.write(table)
        return 0
    text = SERVICE_DOC.read_text(encoding="utf-8")
    if args.check:
        if current_table(text) != table:
            print(f"{SERVICE_DOC}: settings table out of date; run python scripts/settings_table.py --write",
                  file=sys.stderr)
            return 1
        return 0
    SERVICE_DOC.write_text(with_table(text, table), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
