"""symnet's version: a leaf, so modules that stamp it (generated headers, checkpoints) need not import the package."""

__version__ = "0.1.0"
