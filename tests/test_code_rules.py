"""Rules of the code that no linter checks: module docstrings say what a module does in a few
lines (the reasoning lives in docs/decisions/), and code cites nothing a reader lacks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("streams", "sinks", "api", "workers")
MAX_DOCSTRING_LINES = 15
# Section numbers of the SPEC and the seed documents: neither ships with the repository.
FOREIGN_REFERENCE = re.compile(r"\bSPEC\s*§?\s*\d|\bseeds?\s+0\d\d")


def _python_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", _python_files(*PACKAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_docstring_is_a_few_lines(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""
    assert len(doc.splitlines()) <= MAX_DOCSTRING_LINES


def test_no_code_cites_a_spec_section_or_a_seed_document() -> None:
    tops = (*PACKAGES, "eventpipe", "bench", "tests")
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in _python_files(*tops)
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if FOREIGN_REFERENCE.search(line) and p.name != "test_code_rules.py"]
    assert found == []


def test_every_decision_record_names_its_proof() -> None:
    records = sorted((ROOT / "docs/decisions").glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert records
    for record in records:
        text = record.read_text()
        for section in ("## Context", "## Decision", "## Consequences", "## Proof"):
            assert section in text, f"{record.name} lacks {section}"
        proofs = re.findall(r"`(tests/test_\w+\.py)(?:::(\w+))?`", text.split("## Proof")[1])
        assert proofs, f"{record.name} names no test"
        for path, name in proofs:
            source = (ROOT / path).read_text()
            assert not name or f"def {name}(" in source, f"{record.name}: {path}::{name}"
