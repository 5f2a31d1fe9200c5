"""Checkpoints: parameters, optimizer state and training metadata in one ``.npz`` file.

Written atomically (:func:`symnet.files.write_atomic`), read with ``allow_pickle=False``: loading
never runs anything the file holds.  Arrays are stored under ``param/<name>`` and ``state/<name>``; everything
else (the model's architecture hash, the epoch, the seed, the training settings, the history) is one JSON text
under ``meta``.  A file that is not a usable checkpoint (damaged, truncated, holding Python objects, garbled
metadata, non-finite numbers) and a model with another architecture are refused with one clear error.
"""

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symnet.declare.optimizers import STEP
from symnet.errors import ConfigurationError, NonFiniteError, quoted
from symnet.files import writable_folder, write_atomic
from symnet.version import __version__

ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")   # a zip archive with members, an empty one
SCALAR_TYPES = (str, int, float, bool, type(None))


def definition_hash(model):
    """SHA-256 of the model's architecture (layers, activations, loss), independent of symnet's sources.

    Weight decay is left out: it does not change the parameters' meaning, and resuming compares it as a setting.
    """
    return hashlib.sha256(model.architecture().encode("utf-8")).hexdigest()


@dataclass
class Checkpoint:
    """What :func:`load` returns."""

    params: dict
    optimizer_state: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def check_path(path):
    """``path`` as a :class:`~pathlib.Path` if a checkpoint can be written there, else a clear error.

    It must end in ``.npz``, must not be a folder, and its folder must exist or be possible to make, and take
    files (:func:`symnet.files.writable_folder`; missing folders are made when saving).  Nothing is created here,
    so a run can check before it trains.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ConfigurationError(f"checkpoint path must end in .npz, got {str(path)!r}")
    if path.is_dir():
        raise ConfigurationError(f"checkpoint path {str(path)!r} is a folder; give a file in it, "
                                 f"e.g. {str(path / 'checkpoint.npz')!r}")
    writable_folder(path.parent, "checkpoint folder")
    return path


def save(path, params, optimizer_state=None, model=None, **metadata):
    """Write ``params`` (name → array), ``optimizer_state`` and JSON-able ``metadata`` to ``path`` atomically.

    With ``model`` the file records its architecture hash, and :func:`load` with a model checks it.  The file gets
    the permissions of a plain ``open`` under the user's umask.  Returns the path.
    """
    path = check_path(path)
    meta = {"symnet": __version__, "definition": definition_hash(model) if model is not None else None,
            "model": model.describe() if model is not None else None, **metadata}
    try:
        meta_text = json.dumps(meta, sort_keys=True)
    except TypeError as error:
        raise ConfigurationError(f"checkpoint metadata must be JSON-serialisable: {error}") from None
    arrays = {f"param/{name}": np.asarray(value) for name, value in params.items()}
    arrays.update({f"state/{name}": np.asarray(value) for name, value in (optimizer_state or {}).items()})
    arrays["meta"] = np.array(meta_text)
    content = io.BytesIO()
    np.savez(content, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, content.getvalue())
    return path


def unusable(path, reason):
    """The error for a file that is not a usable checkpoint, saying why."""
    return ConfigurationError(f"{str(path)!r} is not a usable symnet checkpoint: {reason}")


def load(path, model=None, require=()):
    """Read a checkpoint; with ``model``, fail unless it was saved from a model with the same architecture.

    Every parameter and state array must hold finite numbers; known metadata entries (``epoch``, ``seed``,
    ``settings``, ``history``) must have their types, and those named in ``require`` must be present.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigurationError(f"{str(path)!r} is a folder, not a checkpoint file")
    if not path.is_file():
        raise ConfigurationError(f"no checkpoint at {str(path)!r}")
    arrays = _read_arrays(path)
    meta = _read_metadata(path, arrays.get("meta"))
    missing = [key for key in require if key not in meta]
    if missing:
        raise unusable(path, f"its metadata lacks {', '.join(missing)}; resuming needs a file written by "
                             "fit(..., checkpoint=PATH)")
    params = {key[len("param/"):]: value for key, value in arrays.items() if key.startswith("param/")}
    state = {key[len("state/"):]: value for key, value in arrays.items() if key.startswith("state/")}
    for kind, group in (("parameter", params), ("optimizer state", state)):
        for name, value in group.items():
            if value.dtype.kind != "f":
                raise unusable(path, f"{kind} {quoted(name)} holds {value.dtype} values; symnet saves floats")
            if not np.isfinite(value).all():
                raise NonFiniteError(f"{str(path)!r} is not a usable symnet checkpoint: {kind} {quoted(name)} holds "
                                     "NaN or infinity; training cannot continue from it")
    step = state.get(STEP)
    if step is not None and (step.shape != (1,) or step[0] < 0 or step[0] != np.floor(step[0])):
        raise unusable(path, f"its step count {quoted(step.tolist())} is not one whole number ≥ 0")
    if model is not None and meta.get("definition") != definition_hash(model):
        raise ConfigurationError(
            f"checkpoint {str(path)!r} was saved from a different model "
            f"({quoted(meta.get('model') or 'not recorded')}); this model is {model.describe()}")
    return Checkpoint(params, state, meta)


def _read_arrays(path):
    """Every member of the ``.npz`` at ``path`` as a plain array (never unpickled), or a clear error."""
    arrays = {}
    try:
        with path.open("rb") as stream:
            signature = stream.read(4)
        if signature not in ZIP_SIGNATURES:
            raise unusable(path, "the file is empty" if not signature else "it is not a .npz (zip) archive")
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                try:
                    value = archive[key]
                except ValueError:
                    raise unusable(path, f"member {quoted(key)} is not a plain array of numbers or text (it is "
                                         "damaged or holds Python objects, which symnet never loads)") from None
                if not isinstance(value, np.ndarray):
                    raise unusable(path, f"member {quoted(key)} is not a .npy array")
                arrays[key] = value
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError) as error:
        raise unusable(path, f"it cannot be read ({quoted(error)}); the archive is damaged or truncated") from None
    return arrays


def _read_metadata(path, text):
    """The JSON object stored under ``meta``, checked entry by entry."""
    if text is None:
        raise unusable(path, "it has no 'meta' member")
    if text.dtype.kind != "U" or text.shape != ():
        raise unusable(path, f"its 'meta' member is a {text.dtype} array of shape {text.shape}; expected JSON text")
    try:
        meta = json.loads(str(text))
    except (ValueError, RecursionError):
        raise unusable(path, f"its metadata is not JSON: {quoted(str(text))}") from None
    if not isinstance(meta, dict):
        raise unusable(path, f"its metadata is {quoted(json.dumps(meta))}; expected a JSON object")
    problem = _metadata_problem(meta)
    if problem:
        raise unusable(path, f"its metadata's {problem}")
    return meta


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _metadata_problem(meta):
    """What is wrong with a known entry of ``meta`` (``"epoch is ..."``), or None."""
    for key in ("epoch", "seed"):
        if key in meta and not _is_count(meta[key]):
            return f"{key} is {quoted(json.dumps(meta[key]))}; expected an integer ≥ 0"
    for key in ("symnet", "definition", "model"):
        if not isinstance(meta.get(key), (str, type(None))):
            return f"{key} is {quoted(json.dumps(meta[key]))}; expected text"
    settings = meta.get("settings", {})
    if not isinstance(settings, dict) or not all(isinstance(value, SCALAR_TYPES) for value in settings.values()):
        return f"settings are {quoted(json.dumps(settings))}; expected an object of numbers and texts"
    history = meta.get("history", {})
    if not isinstance(history, dict):
        return f"history is {quoted(json.dumps(history))}; expected an object"
    records, changes = history.get("records", []), history.get("changes", [])
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        return f"history records are {quoted(json.dumps(records))}; expected a list of objects"
    if not isinstance(history.get("stopped"), (str, type(None))):
        return f"history's stopped is {quoted(json.dumps(history['stopped']))}; expected text or null"
    if not isinstance(changes, list) or not all(isinstance(change, dict) and _is_count(change.get("epoch"))
                                                and isinstance(change.get("changed"), dict) for change in changes):
        return f"history changes are {quoted(json.dumps(changes))}; expected a list of {{epoch, changed}} objects"
    return None
