"""Analyses of trained recurrent networks, after Karpathy, Johnson & Fei-Fei (2015),
"Visualizing and Understanding Recurrent Networks", and the pieces of the HTML report
that shows them. Import the submodules directly (``from scratchrnn.analysis import ngram``).
"""
