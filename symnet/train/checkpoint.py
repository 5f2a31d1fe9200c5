"""Checkpoints: parameters, optimizer state and training metadata in one ``.npz`` file.

Written atomically (a temporary file in the same folder, then a rename), read
with ``allow_pickle=False``.  Arrays are stored under ``param/<name>`` and
``state/<name>``; everything else (the model's definition hash, the epoch,
the seed, the history) is one JSON text under ``meta``.  Loading into a model
with a different definition fails with a clear error.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symnet import __version__
from symnet.errors import ConfigurationError


def definition_hash(model):
    """SHA-256 of the model's definition (layers, activations, loss, weight decay), independent of symnet's sources."""
    return hashlib.sha256(model.definition().encode("utf-8")).hexdigest()


@dataclass
class Checkpoint:
    """What :func:`load` returns."""

    params: dict
    optimizer_state: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def save(path, params, optimizer_state=None, model=None, **metadata):
    """Write ``params`` (name → array), ``optimizer_state`` and JSON-able ``metadata`` to ``path`` atomically.

    With ``model`` the file records its definition hash, and :func:`load` with a
    model checks it.  Returns the path.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ConfigurationError(f"checkpoint path must end in .npz, got {str(path)!r}")
    meta = {"symnet": __version__, "definition": definition_hash(model) if model is not None else None,
            "model": model.describe() if model is not None else None, **metadata}
    try:
        meta_text = json.dumps(meta, sort_keys=True)
    except TypeError as error:
        raise ConfigurationError(f"checkpoint metadata must be JSON-serialisable: {error}") from None
    arrays = {f"param/{name}": np.asarray(value) for name, value in params.items()}
    arrays.update({f"state/{name}": np.asarray(value) for name, value in (optimizer_state or {}).items()})
    arrays["meta"] = np.array(meta_text)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load(path, model=None):
    """Read a checkpoint; with ``model``, fail unless it was saved from a model with the same definition."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"no checkpoint at {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            params = {key[len("param/"):]: archive[key] for key in archive.files if key.startswith("param/")}
            state = {key[len("state/"):]: archive[key] for key in archive.files if key.startswith("state/")}
            meta = json.loads(str(archive["meta"]))
    except (OSError, ValueError, KeyError) as error:
        raise ConfigurationError(f"{str(path)!r} is not a symnet checkpoint: {error}") from None
    if model is not None and meta.get("definition") != definition_hash(model):
        raise ConfigurationError(
            f"checkpoint {str(path)!r} was saved from a different model ({meta.get('model')}); "
            f"this model is {model.describe()}")
    return Checkpoint(params, state, meta)
