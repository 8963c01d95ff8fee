"""One module per section of the analysis report: each turns what its analysis computed
into a ``html_report.Section`` (and adds its numbers to the summary). ``report.py``
runs them in order."""
