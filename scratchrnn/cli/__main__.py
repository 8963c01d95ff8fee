"""``python -m scratchrnn.cli``: the ``scratchrnn`` command."""
import sys

from scratchrnn.cli import main

sys.exit(main())
