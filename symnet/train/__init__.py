"""Train: optimizers, the training loop, data and checkpoints."""
