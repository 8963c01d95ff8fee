"""Learn by doing: exercises that a learner writes, and a grader that says what is wrong.

    scratchrnn exercise list                 the course, in order, each with its derivation
    scratchrnn exercise start NAME [--dir]   a skeleton: signature, shapes, equations, no answer
    scratchrnn exercise check FILE           grade it: ✔/✘ per item and a DIAGNOSIS
    scratchrnn.learn.check("rnn_step", fn)   the same for a function in a notebook cell

``exercises`` holds one module per exercise (its skeleton, its cases, the book's answer and
the mistakes it recognises); ``grader`` turns a learner's results into items and a
diagnosis; ``sandbox`` runs the learner's file in its own process with a time and memory
limit, passing arrays as .npz files and everything else as JSON (never pickle).
"""


def check(exercise, function):
    """Grade ``function`` (written in a notebook cell, say) for the exercise named
    ``exercise``, here in this process, print the items and the diagnosis, and return the
    Grade (``.passed``, ``.diagnosis``). There is no sandbox here: a loop that never ends
    hangs the kernel; ``scratchrnn exercise check FILE`` runs a file with limits."""
    from scratchrnn.learn.exercises import EXERCISES
    from scratchrnn.learn.grader import grade_callable
    if exercise not in EXERCISES:
        raise ValueError(f"There is no exercise {exercise!r}; choose one of "
                         f"{', '.join(EXERCISES)}.")
    grade = grade_callable(EXERCISES[exercise], function)
    print(grade.render())
    return grade
