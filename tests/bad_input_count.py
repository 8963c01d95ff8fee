"""Count the suite's bad-input cases by area, from the tests themselves.

    python tests/bad_input_count.py            # print the README's table
    python tests/bad_input_count.py --write    # rewrite it in README.md, between the markers

A case is a collected test (each parametrization and each file of a hypothesis-driven test
counts once) carrying the ``bad_input(area)`` marker: set on a test or module with
``pytest.mark.bad_input("area")``, or given by ``conftest.BAD_INPUT_FILES`` to every test of a
file that holds nothing else. ``tests/test_bad_input_count.py`` checks the README's table
against this count, so the numbers cannot go stale."""
import os
import re
import sys
from collections import Counter

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.path.dirname(HERE), "README.md")
BEGIN, END = "<!-- bad-input-count: begin (tests/bad_input_count.py --write) -->", "<!-- bad-input-count: end -->"


class _Collector:
    def __init__(self):
        self.areas = Counter()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        for item in session.items:
            marker = item.get_closest_marker("bad_input")
            if marker is not None:
                self.areas[marker.args[0] if marker.args else "other"] += 1


def count():
    """{area: number of bad-input cases}, by collecting the suite (nothing runs)."""
    collector = _Collector()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", HERE],
                       plugins=[collector])
    if code not in (0, 5):
        raise SystemExit(f"collecting the tests failed (pytest exit status {code})")
    return dict(collector.areas)


def table(areas):
    rows = [BEGIN, "| area | bad-input cases |", "|---|---:|"]
    rows += [f"| {area} | {n} |" for area, n in sorted(areas.items(), key=lambda kv: (-kv[1], kv[0]))]
    rows += [f"| **total** | **{sum(areas.values())}** |", END]
    return "\n".join(rows)


def readme_table():
    with open(README, encoding="utf-8") as f:
        match = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), f.read(), re.S)
    return match.group(0) if match else None


def main(argv):
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        text = table(count())
    if "--write" in argv:
        with open(README, encoding="utf-8") as f:
            readme = f.read()
        if BEGIN not in readme:
            raise SystemExit(f"README.md has no {BEGIN!r} marker")
        readme = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda m: text, readme, flags=re.S)
        with open(README, "w", encoding="utf-8") as f:
            f.write(readme)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
