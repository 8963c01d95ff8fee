"""The README's table of bad-input cases is the count the tests give (no typed numbers)."""
import os
import subprocess
import sys

from bad_input_count import readme_table

HERE = os.path.dirname(os.path.abspath(__file__))


def test_the_readme_table_is_the_count_of_the_tests():
    proc = subprocess.run([sys.executable, os.path.join(HERE, "bad_input_count.py")], cwd=HERE,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert readme_table() == proc.stdout.strip(), (
        "README.md's bad-input table is stale; run: python tests/bad_input_count.py --write")
