"""Subcommands of the ``scratchrnn`` command line, one module each (see ``cli.py``)."""
