"""Declare: expressions, activations, layers and losses as SymPy."""
