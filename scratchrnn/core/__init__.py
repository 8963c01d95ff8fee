"""What every layer of scratchrnn shares and which needs none of them: the backend (NumPy or CuPy
behind one ``xp``), the error classes, and the checks of numbers a user gives."""
