"""``scratchrnn grid``: the model grid of Karpathy, Johnson & Fei-Fei (2015), on one machine
or many.

    spec = GridSpec.from_lists("python-docs", "rnn,gru,lstm", "1,2", "64,128", "0",
                               Budget(steps=1000))
    run_grid(spec, "grids/docs", LocalPool(workers=2))

Every grid point (cell x layers x size x seed) is an ordinary training run through
``scratchrnn.lm.run.Trainer``, in its own run folder ``DIR/runs/<point>`` with its own
checkpoints, and the same budget (steps or minutes) as every other point. The points run
on a local process pool (``local_pool``) or on a Dask cluster (``dask_cluster``); as each
one finishes its result is appended to ``DIR/results.jsonl`` and the table
(``DIR/results.md``) and figure (``DIR/results.png``) are redrawn.

One job per file:

    points.py       the grid's settings, checked, and the list of points it spans
    worker.py       what a worker does with one point: train (or resume) it and score it
    local_pool.py   concurrent.futures process pool, one BLAS thread per worker
    dask_cluster.py the same on a Dask cluster (an existing scheduler or a LocalCluster)
    lock.py         one grid per folder: a lock file naming its process
    results.py      results.jsonl: append one point atomically, read the latest per point
    report.py       results.md (the paper's table layout, the findings) and results.png
    progress.py     points done / running / left, with an ETA
    driver.py       run_grid: puts the pieces together
"""
