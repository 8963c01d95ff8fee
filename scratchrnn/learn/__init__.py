"""Learn by doing: exercises that a learner writes, and a grader that says what is wrong.

    scratchrnn exercise list                 the course, in order, each with its derivation
    scratchrnn exercise start NAME [--dir]   a skeleton: signature, shapes, equations, no answer
    scratchrnn exercise check FILE           grade it: ✔/✘ per item and a DIAGNOSIS

``exercises`` holds one module per exercise (its skeleton, its cases, the book's answer and
the mistakes it recognises); ``grader`` turns a learner's results into items and a
diagnosis; ``sandbox`` runs the learner's file in its own process with a time and memory
limit, passing arrays as .npz files and everything else as JSON (never pickle).
"""
