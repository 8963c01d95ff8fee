"""docs/derivations.md is numbered 1, 2, ... without gaps, and every reference to one of its
sections (``§n`` in the book, ``derivations.md, section n`` or ``derivations.md §n`` anywhere)
names a section that exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DERIVATIONS = ROOT / "docs" / "derivations.md"


def section_numbers():
    return [int(n) for n in re.findall(r"^## (\d+)\. ", DERIVATIONS.read_text(encoding="utf-8"), re.M)]


def test_sections_are_numbered_without_gaps():
    numbers = section_numbers()
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def references():
    """(file, section number) for every reference to a section of derivations.md."""
    found = []
    sources = [p for folder in ("scratchrnn", "scripts", "tests", "benchmarks", "docs")
               for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md")]
    for path in [*sources, ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8")
        pointed = re.findall(r"derivations(?:\.md)?(?:\]\([^)]*\))?,? *(?:§|section )(\d+)", text)
        found += [(path, int(n)) for n in pointed]
        # the book and derivations.md itself write "§n" for a section of derivations.md
        if path == DERIVATIONS or "book" in path.relative_to(ROOT).parts:
            found += [(path, int(n)) for n in re.findall(r"§(\d+)", text)]
        if path.name == "README.md":
            found += [(path, int(n)) for n in re.findall(r"§(\d+)[–-](\d+) of `docs/derivations", text)
                      for n in n]
    return found


def test_every_reference_names_a_section_that_exists():
    numbers = set(section_numbers())
    found = references()
    assert len(found) > 30                         # the book names its sections everywhere
    wrong = [f"{path.relative_to(ROOT)}: §{n}" for path, n in found if n not in numbers]
    assert not wrong, "references to sections derivations.md does not have:\n" + "\n".join(wrong)


def test_every_file_the_readme_and_the_docs_name_exists():
    """README's reading table and the docs name files by path (``scratchrnn/book/scan.py``,
    ``results/x-{a,b}.md``); each one names a file or folder of the repository, so a move
    cannot leave a stale row."""
    named = r"`((?:scratchrnn|tests|benchmarks|scripts)/[\w/.-]*)(?:\{([\w,]+)\}([\w/.-]*))?"
    stale, seen = [], 0
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for head, choices, tail in re.findall(named, doc.read_text(encoding="utf-8")):
            for path in [head + c + tail for c in choices.split(",")] if choices else [head]:
                seen += 1
                if not (ROOT / path.rstrip("/")).exists():
                    stale.append(f"{doc.relative_to(ROOT)}: {path}")
    assert seen > 50
    assert not stale, "\n".join(stale)
