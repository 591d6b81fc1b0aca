"""The Python examples of README.md and docs/*.md, as scripts (shared by the tests that run them
from the source tree and from an installed wheel).

A block is a script unless the line before its fence says otherwise: ``<!-- not-a-script: why -->``
(never run) or ``<!-- needs-server: why -->`` (run against a ``lunatic-mp serve`` started with no
config, through ``$LUNATIC_MP_CONNECT``). Both are meant to be rare.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>\s*)```python\s*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-a-script|needs-server):\s*(?P<why>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Example:
    document: Path
    line: int  # of the opening fence, 1-based
    source: str
    marker: str | None  # "not-a-script", "needs-server" or None

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def examples(documents: list[Path] = DOCUMENTS) -> list[Example]:
    """Every ```python block of the documents, dedented to its fence."""
    found = []
    for document in documents:
        lines = document.read_text().splitlines()
        index = 0
        while index < len(lines):
            opening = FENCE.match(lines[index])
            if opening is None:
                index += 1
                continue
            indent = opening["indent"]
            end = index + 1
            while end < len(lines) and lines[end].rstrip() != indent + "```":
                end += 1
            previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
            marker = MARKER.match(previous)
            body = textwrap.dedent("\n".join(lines[index + 1 : end])) + "\n"
            found.append(Example(document, index + 1, body, marker["kind"] if marker else None))
            index = end + 1
    return found
