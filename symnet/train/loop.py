"""The training loop: ``sn.fit(net, params, X, Y, ...)`` → :class:`History`.

Each epoch is one call of the generated ``train_epoch`` (a few calls when a live
progress bar is shown), so no Python runs between steps.  Each epoch draws
its own permutation from ``default_rng([seed, epoch])``, so
an epoch's batches depend only on the seed and the epoch number: a run
resumed from a checkpoint (parameters, optimizer state, epoch, seed) goes on
bit-identically to an uninterrupted one.  A non-finite loss stops training at
once; the parameters and optimizer state are put back to the last point whose
loss was finite (the epoch's start is kept, and the epoch's finite steps are
replayed — deterministic, so nothing is lost and no copy is made per step).
A checkpoint records the run's :func:`training_settings`; resuming with other
settings is refused unless asked for (``allow_changes=True``), since the run
would then not continue as it began.
"""

import hashlib
import math
import sys
import time

import numpy as np

from symnet.datasets import labels_of, split
from symnet.errors import ConfigurationError, quoted
from symnet.generate.modules import compile_once
from symnet.network import check_seed, copy_back
from symnet.train import checkpoint as checkpoints

CLASSIFICATION_LOSSES = ("softmax_cross_entropy", "cross_entropy", "binary_cross_entropy")
PROGRESS_INTERVAL = 0.1   # seconds between progress-bar redraws at least
PROGRESS_UPDATES = 20     # compiled calls per epoch when a live progress bar is shown


class History:
    """Per-epoch metrics: ``epoch``, ``loss`` (mean batch loss), ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``seconds`` (wall time of the epoch); ``stopped`` says why training ended early (or is None); ``changes``
    lists the settings changed on resuming, ``{"epoch": first epoch with them, "changed": {name: {"from", "to"}}}``."""

    KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")

    def __init__(self, records=None, stopped=None, changes=None):
        self.records = list(records or [])
        self.stopped = stopped
        self.changes = list(changes or [])

    def __getattr__(self, key):
        if key in History.KEYS:
            return [record.get(key) for record in self.records]
        raise AttributeError(key)

    def __len__(self):
        return len(self.records)

    def __repr__(self):
        last = self.records[-1] if self.records else {}
        return f"History({len(self.records)} epochs, last {last}, stopped={self.stopped!r})"

    def as_dict(self):
        return {"records": self.records, "stopped": self.stopped, "changes": self.changes}

    @classmethod
    def from_dict(cls, data):
        return cls(data.get("records"), data.get("stopped"), data.get("changes"))


class Progress:
    """One line per epoch on standard error; on a terminal, a tqdm bar under the lines too (over the steps of
    every epoch to run, with the epoch, the running loss and the time left), removed when training ends.

    ``verbose=None`` shows progress on a terminal only; True or False forces the lines on or off (the bar needs a
    terminal).  Use it as a context manager, so the bar is closed however training ends.
    """

    def __init__(self, verbose, epochs, stream=None, start=0, steps=1):
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = self.live if verbose is None else bool(verbose)
        self.epochs, self.start, self.bar, self.last_draw = epochs, start, None, 0.0
        if self.enabled and self.live and epochs > start:
            from tqdm import tqdm   # only when a bar is drawn: `import symnet` stays without it

            # smoothing=0: the time left from the mean rate so far (every step costs about the same)
            self.bar = tqdm(total=(epochs - start) * steps, file=self.stream, unit="step", leave=False, smoothing=0,
                            dynamic_ncols=True, desc=f"epoch {start + 1}/{epochs}",
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {remaining} left{postfix}")

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def update(self, epoch, done, total, loss):
        """Steps ``done`` of ``total`` of ``epoch`` have run; ``loss`` is their mean loss.  The bar is drawn again
        at most every :data:`PROGRESS_INTERVAL` seconds (between draws an update costs a clock reading)."""
        if self.bar is None or time.perf_counter() - self.last_draw < PROGRESS_INTERVAL:
            return
        self.last_draw = time.perf_counter()
        self.bar.n = (epoch - 1 - self.start) * total + done
        self.bar.set_description_str(f"epoch {epoch}/{self.epochs}", refresh=False)
        self.bar.set_postfix_str(f"loss {loss:.4g}", refresh=False)
        self.bar.refresh()

    def _write(self, line):
        # one write, as before tqdm: clear the bar's line, then the text; the bar is drawn again under it at the
        # next update (tqdm.write would clear, print and redraw in several writes, each a system call on a tty)
        self.stream.write(("\r\033[K" if self.live else "") + line + "\n")
        self.stream.flush()

    def epoch_done(self, record):
        if not self.enabled:
            return
        text = " ".join(f"{key} {record[key]:.4g}" for key in ("loss", "accuracy", "val_loss", "val_accuracy")
                        if record.get(key) is not None)
        self._write(f"epoch {record['epoch']}/{self.epochs}: {text} ({record['seconds']:.2f} s)")

    def message(self, text):
        if self.enabled:
            self._write(text)


def is_classification(net, Y):
    """Cross-entropy losses, or targets that are all 0/1 (e.g. XOR trained with MSE)."""
    return net.model.loss.name in CLASSIFICATION_LOSSES or bool(np.isin(Y, (0.0, 1.0)).all())


def accuracy(net, params, X, Y):
    """Share of samples whose predicted class is the target's: argmax for several outputs; for one output,
    the logit's sign (binary cross-entropy) or 0.5 as the threshold."""
    output = net.predict(params, X)
    if output.shape[1] == 1:
        threshold = 0.0 if net.model.loss.name == "binary_cross_entropy" else 0.5
        predicted = (output[:, 0] > threshold).astype(np.int64)
    else:
        predicted = np.argmax(output, axis=1)
    return float(np.mean(predicted == labels_of(Y)))


def noise_seeds(net, seed, epoch, steps):
    """The epoch's noise argument: ``[]`` without Dropout, else ``[seeds]``, one seed per step drawn from
    (seed, epoch), so resuming repeats them."""
    if not net.model.training_mode:
        return []
    return [np.random.default_rng([seed, epoch, 1]).integers(0, 2**31, size=steps)]


def _python_steps(net, params, X, Y, order, batch_size, first, last, noise, losses):
    """Steps first … last − 1 as ``train_epoch`` runs them, one ``net.step`` each (Newton-CG); the first step whose
    loss is not finite (its update is done), or last."""
    for k in range(first, last):
        rows = order[k * batch_size:(k + 1) * batch_size]
        losses[k] = net.step(params, X[rows], Y[rows], int(noise[0][k]) if noise else None)
        if not np.isfinite(losses[k]):
            return k
    return last


def _snapshot(params, state):
    return params.flat.copy(), {name: value.copy() for name, value in state.items()}


def _restore(snapshot, params, state):
    flat, saved = snapshot
    params.flat[...] = flat
    for name, value in saved.items():
        state[name][...] = value


def training_settings(net, batch_size, seed, validation_split, X, Y):
    """Everything besides the architecture that decides a run's trajectory, as a JSON-able dict: the optimizer,
    its hyper-parameters, the batch size, seed, validation split, dtype, weight decay and the training data's
    SHA-256 (prefix).  A resumed run must have the same to continue bit-identically."""
    data = hashlib.sha256()
    for array in (X, Y):
        data.update(repr(array.shape).encode("ascii"))
        data.update(array.tobytes())
    return {"optimizer": type(net.optimizer).__name__,
            **{h.name: value for h, value in zip(net.optimizer.hyperparameters, net.optimizer.values())},
            "batch_size": batch_size, "seed": seed, "validation_split": validation_split, "dtype": str(net.dtype),
            "weight_decay": net.model.weight_decay, "training_data": f"sha256:{data.hexdigest()[:16]}"}


def _changed(saved, current):
    """``{setting: {"from": old, "to": new}}`` for each setting that differs (None where one side lacks it)."""
    return {key: {"from": saved.get(key), "to": current.get(key)} for key in sorted(saved.keys() | current.keys())
            if key not in saved or key not in current or saved[key] != current[key]}


def _shown(settings, key, absent):
    if key not in settings:
        return absent
    value = settings[key]
    return quoted(value) if isinstance(value, str) else repr(value)


def fit(net, params, X, Y, epochs=10, batch_size=32, seed=None, validation=None, validation_split=None,
        early_stopping=None, callbacks=(), verbose=None, checkpoint=None, resume=None, allow_changes=False):
    """Train ``params`` in place with ``net``'s optimizer; return the :class:`History`.

    ``epochs`` is the total number of epochs (also when resuming).  ``batch_size=None``, or the ``GD``
    optimizer, uses the whole training set as one batch.  ``validation=(Xv, Yv)`` or
    ``validation_split=f`` (a seeded, class-stratified hold-out) adds validation metrics.
    ``early_stopping=p`` stops after ``p`` epochs without a better validation loss (training loss when there
    is no validation set) and restores the best parameters.  Each callback is called as
    ``callback(record, params)`` after every epoch and stops training by returning True.
    ``checkpoint=PATH`` (a ``.npz`` file, checked before training) saves after every epoch; ``resume=PATH``
    continues from such a file with the settings it recorded (:func:`training_settings`; ``seed=None`` takes the
    checkpoint's).  Another setting, e.g. a new learning rate, is refused with an error naming it, since the
    run would not continue as it began, unless ``allow_changes=True``: then the change is kept in
    ``History.changes`` and in later checkpoints (another optimizer starts with fresh state).
    ``verbose``: None shows progress on a terminal only; True or False forces it on or off.
    """
    if net.optimizer is None:
        raise ConfigurationError("fit needs a network compiled with an optimizer, e.g. "
                                 "model.compile(optimizer=sn.optim.Adam(lr=0.01))")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ConfigurationError(f"epochs must be an integer ≥ 0, got {epochs!r}")
    if validation is not None and validation_split is not None:
        raise ConfigurationError("give validation=(X, Y) or validation_split=, not both")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigurationError(f"batch_size must be a positive integer or None, got {quoted(batch_size)}")
    if validation_split is not None and (isinstance(validation_split, bool) or not isinstance(validation_split, float)
                                         or not 0.0 < validation_split < 1.0):
        raise ConfigurationError(f"validation_split must be a fraction in (0, 1), got {quoted(validation_split)}")
    if early_stopping is not None and (isinstance(early_stopping, bool) or not isinstance(early_stopping, int)
                                       or early_stopping < 1):
        raise ConfigurationError(f"early_stopping must be a positive integer (epochs without improvement) or None, "
                                 f"got {quoted(early_stopping)}")
    seed = None if seed is None else check_seed(seed)
    if checkpoint is not None:
        checkpoint = checkpoints.check_path(checkpoint)
    history, start, saved = History(), 0, None
    if resume is not None:
        saved = checkpoints.load(resume, net.model, require=("epoch", "seed"))
        start = saved.metadata["epoch"]
        if epochs <= start:
            more = max(epochs, 1)
            raise ConfigurationError(f"checkpoint {str(resume)!r} already holds {start} epochs, and epochs="
                                     f"{epochs} is the total, also when resuming: give more than {start}, e.g. "
                                     f"epochs={start + more} to train {more} more")
        seed = saved.metadata["seed"] if seed is None else seed
    seed = 0 if seed is None else seed
    packed = net.pack(params)
    X, Y = net._inputs(X, Y)
    if validation_split is not None:
        X, Y, Xv, Yv = split(X, Y, validation_split, seed=seed, stratify=is_classification(net, Y))
        X, Y, validation = np.ascontiguousarray(X), np.ascontiguousarray(Y), (Xv, Yv)
    if validation is not None:
        validation = net._inputs(*validation)
    rows = len(X)
    full_batch = batch_size is None or getattr(net.optimizer, "full_batch", False)
    batch_size = rows if full_batch else min(batch_size, rows)
    least = net.model.min_training_batch
    if least > 1 and (batch_size < least or 0 < rows % batch_size < least):
        raise ConfigurationError(
            f"{net.model.describe()} trains on batches of at least {least} samples (BatchNorm's running variance "
            f"is unbiased: N − 1 divides it), but {rows} rows in batches of {batch_size} leave a batch of "
            f"{rows % batch_size or batch_size}; choose another batch_size")
    # hashing the data costs a pass over it: only runs that save or resume need the settings
    settings = training_settings(net, batch_size, seed, validation_split, X, Y) \
        if checkpoint is not None or saved is not None else None
    if saved is not None:
        history = History.from_dict(saved.metadata.get("history", {}))
        recorded = saved.metadata.get("settings", {})
        changed = _changed(recorded, settings)
        if changed and not allow_changes:
            listed = "; ".join(f"{key} {_shown(recorded, key, '(not recorded)')} → {_shown(settings, key, '(none)')}"
                               for key in changed)
            raise ConfigurationError(
                f"checkpoint {str(resume)!r} was trained with other settings ({listed}), so the run would "
                "not continue as it began; resume with the checkpoint's settings, or pass allow_changes=True "
                "(symnet train --allow-changes) to go on with the new ones (the change is kept in the history)")
        if changed:
            history.changes.append({"epoch": start + 1, "changed": changed})
        extra = sorted(set(saved.params) - {name for name, *_ in net.layout})
        if extra:
            raise checkpoints.unusable(resume, f"it holds parameters this network does not have: {', '.join(extra)}")
        packed.flat[...] = net.pack(saved.params).flat
        if "optimizer" in changed:                   # another rule: its state starts afresh
            net.reset_state()
        else:
            _load_state(net, saved.optimizer_state, resume)
        history.stopped = None
    classify = is_classification(net, Y)
    best = (math.inf, None, None)
    bounds = [(low, min(low + batch_size, rows)) for low in range(0, rows, batch_size)]

    steps = len(bounds)
    progress = Progress(verbose, epochs, start=start, steps=steps)
    sizes = np.array([high - low for low, high in bounds], dtype=np.float64)
    chunk = max(1, -(-steps // PROGRESS_UPDATES)) if progress.bar is not None else steps
    losses = np.empty(steps)

    def run(order, noise, first, last):
        """Steps first … last − 1 of the epoch with this order, in one compiled call; the first non-finite step.
        The optimizer's hyper-parameters are read afresh: a callback may have changed them (a schedule)."""
        if "train_epoch" not in net.signatures:      # a second-order optimizer: its steps run in Python
            return _python_steps(net, packed, X, Y, order, batch_size, first, last, noise, losses)
        bound = net.bound_arguments()
        values = {"theta": packed.flat, "X": X, "Y": Y, "order": order, "batch_size": batch_size, "first": first,
                  "last": last, "noise_seeds": noise[0] if noise else None, "losses": losses, **bound}
        epoch_arguments = tuple(values[name] for name in net.signatures["train_epoch"])
        compile_once(net.module.train_epoch, net.path, epoch_arguments)
        return net.module.train_epoch(*epoch_arguments)

    with progress:   # the bar is closed however training ends
        previous = None      # (snapshot, order, noise) of the epoch before, to step back across its end
        for epoch in range(start + 1, epochs + 1):
            began = time.perf_counter()
            order = np.random.default_rng([seed, epoch]).permutation(rows)
            noise = noise_seeds(net, seed, epoch, steps)
            at_start = _snapshot(packed, net.optimizer_state)
            for first in range(0, steps, chunk):
                last = min(first + chunk, steps)
                reached = run(order, noise, first, last)
                if reached < last:
                    # the last finite state is the one before the previous step: replay up to it
                    loss, number = losses[reached], reached
                    if number == 0 and previous is not None:
                        replay, restored = (previous, steps - 1), f"before the last step of epoch {epoch - 1}"
                    elif number == 0:
                        replay, restored = ((at_start, order, noise), 0), f"the start of epoch {epoch}"
                    else:
                        replay = ((at_start, order, noise), number - 1)
                        restored = f"before step {number} of epoch {epoch}"
                    (snapshot, replay_order, replay_noise), replay_steps = replay
                    _restore(snapshot, packed, net.optimizer_state)
                    run(replay_order, replay_noise, 0, replay_steps)
                    history.stopped = (f"the loss became {loss} at epoch {epoch}, step {number + 1}; parameters and "
                                       f"optimizer state restored to the last finite state ({restored})")
                    progress.message(f"stopped: {history.stopped}")
                    copy_back(packed, params)
                    return history
                progress.update(epoch, last, steps, float(losses[:last] @ sizes[:last]) / sizes[:last].sum())
            previous = (at_start, order, noise)
            total = float(losses @ sizes)
            record = {"epoch": epoch, "loss": total / rows}
            if classify:
                record["accuracy"] = accuracy(net, packed, X, Y)
            if validation is not None:
                record["val_loss"] = net.loss(packed, *validation)
                if classify:
                    record["val_accuracy"] = accuracy(net, packed, *validation)
            record["seconds"] = time.perf_counter() - began
            history.records.append(record)
            progress.epoch_done(record)
            if checkpoint is not None:
                checkpoints.save(checkpoint, packed, net.optimizer_state, net.model, epoch=epoch, seed=seed,
                                 optimizer=repr(net.optimizer), settings=settings, history=history.as_dict())
            if early_stopping is not None:
                monitored = record.get("val_loss", record["loss"])
                if monitored < best[0]:
                    best = (monitored, epoch, _snapshot(packed, net.optimizer_state))
                elif epoch - best[1] >= early_stopping:
                    _restore(best[2], packed, net.optimizer_state)
                    history.stopped = (f"early stopping at epoch {epoch}: no better "
                                       f"{'validation' if validation is not None else 'training'} loss for "
                                       f"{early_stopping} epochs; parameters of epoch {best[1]} restored")
                    progress.message(history.stopped)
                    break
            if any(callback(record, packed) for callback in callbacks):
                history.stopped = f"a callback stopped training after epoch {epoch}"
                progress.message(history.stopped)
                break
    copy_back(packed, params)
    return history


def _load_state(net, saved, path):
    expected = net.optimizer.state_names()
    if sorted(saved) != sorted(expected):
        raise ConfigurationError(f"checkpoint {str(path)!r} holds optimizer state {sorted(saved)}; "
                                 f"{type(net.optimizer).__name__} needs {sorted(expected)}")
    for name in expected:
        if saved[name].shape != net.optimizer_state[name].shape:
            raise checkpoints.unusable(path, f"optimizer state {quoted(name)} has shape {saved[name].shape}; "
                                             f"this network's has {net.optimizer_state[name].shape}")
        net.optimizer_state[name][...] = saved[name]
