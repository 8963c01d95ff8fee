"""The book: what a learner reads, and what every other path is tested against.

Start at ``onepage.py`` (the whole LSTM language model on one page), then ``cells/`` (one
recurrence per file), ``scan.py`` and ``ops.py``. Nothing here imports an engine, a layer class or
the language-model tool (``docs/architecture.md``; ``tests/test_architecture.py``)."""
