"""The documentation stays in step with the code: the settings table, README's size and its links."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_MAX_BYTES = 16 * 1024
LINKED_DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _settings_table_module():
    spec = importlib.util.spec_from_file_location("settings_table", REPO / "scripts" / "settings_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0)[1:-1], heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    anchors, seen = set(), {}
    for line in FENCE.sub("", markdown).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(markdown: str) -> list[str]:
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return [target for target in LINK.findall(prose)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)]


def test_settings_table_matches_settings():
    module = _settings_table_module()
    table = module.settings_table()
    held = module.current_table(module.SERVICE_DOC.read_text(encoding="utf-8"))
    assert held == table, "docs/service.md is out of date: run python scripts/settings_table.py --write"


def test_settings_table_lists_every_setting():
    module = _settings_table_module()
    from flipkd.service.settings import Settings

    table = module.settings_table()
    for name in Settings.model_fields:
        assert f"`FLIPKD_{name.upper()}`" in table


def test_readme_is_at_most_16_kb():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (limit {README_MAX_BYTES})"


@pytest.mark.parametrize("document", LINKED_DOCS, ids=lambda path: path.name)
def test_relative_links_point_to_existing_files(document: Path):
    broken = []
    for target in _relative_links(document.read_text(encoding="utf-8")):
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        anchor_checked = fragment and linked.suffix == ".md"
        if not linked.exists() or (anchor_checked and fragment not in _anchors(linked.read_text("utf-8"))):
            broken.append(target)
    assert not broken, f"{document.name}: broken links {broken}"


def test_readme_has_relative_links():
    assert len(_relative_links(README.read_text(encoding="utf-8"))) >= 5
