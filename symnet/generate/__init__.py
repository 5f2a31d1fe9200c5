"""Generate: print SymPy as Numba-jitted Python and write it into generated modules."""
