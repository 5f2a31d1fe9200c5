"""Sweeps: many short trainings (optimizers × learning rates × seeds) on Dask's distributed scheduler.

``sn.sweep(model, grid)`` and ``symnet sweep`` train every combination of the grid and summarise each
configuration (optimizer, learning rate): how often the run succeeded, with a Wilson interval, the spread of the
final loss, the time.  Each run is :meth:`~symnet.models.Recipe.train`, what ``symnet train MODEL --optimizer X --lr Y --seed S
--json`` makes, so a run's final loss is that command's, bit for bit, on the same machine.

The runs go to a Dask cluster: by default a ``LocalCluster`` started here, one single-threaded worker process per
core; or an existing scheduler (``scheduler=``, ``$DASK_SCHEDULER_ADDRESS``).  Workers receive the model's
*declaration* (a built-in model's name, else the :class:`~symnet.models.Recipe`: a Sequential and its data), never
compiled code: each worker process generates the content-hashed module into its own folder
(``<generated folder>/sweep/worker-<name>``) and Numba compiles it there, or loads it from that folder's cache;
symnet's loader keeps the module per process, so that happens once per worker process and module.

Records are appended to a JSONL file as runs finish, one whole line per ``write`` call, so an interrupted sweep
leaves whole lines (a torn last line, from a killed process, is ignored and cut off); running the same sweep again
with the same file skips the runs it holds.  A worker that dies takes its current runs with it, and Dask runs them
again on another worker; the file is written by this process only, so each run appears in it once.
"""

import contextlib
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symnet import models
from symnet.compare import plot_path
from symnet.errors import ConfigurationError, quoted
from symnet.files import writable_folder
from symnet.generate import modules
from symnet.network import Sequential, check_seed
from symnet.plotting import pyplot

INSTALL = "pip install 'symnet[sweep]'"
GRID_KEYS = ("optimizer", "lr", "seed")
RUN_KEYS = ("model", "max_epochs", "batch_size", "optimizer", "lr", "seed")   # what identifies a run in the file
Z95 = 1.959963984540054       # the normal quantile of a 95 % interval
QUANTILES = (0.05, 0.5, 0.95)


@dataclass
class Sweep:
    """What :func:`sweep` returns: ``records`` (one dict per run of the grid, in grid order, also those read back
    from the file), ``summary`` (one row per optimizer and learning rate, see :func:`summarize`), ``criterion`` (of
    success, in words), ``settings`` (model, max_epochs, batch_size), ``new`` (runs trained now), ``workers``
    (worker processes; 0 when nothing was left to run), ``seconds`` (wall time), ``out`` and ``plot`` (paths or
    None)."""

    records: list
    summary: list
    criterion: str
    settings: dict
    new: int
    workers: int
    seconds: float
    out: str = None
    plot: str = None

    def as_dict(self):
        """Everything but the records (they are in ``out``), for ``--json``."""
        return {**self.settings, "criterion": self.criterion, "runs": len(self.records), "new": self.new,
                "skipped": len(self.records) - self.new, "workers": self.workers, "seconds": self.seconds,
                "out": self.out, "plot": self.plot, "summary": self.summary}


def sweep(model, grid, *, epochs=None, batch_size=None, data=None, threshold=None, out=None, plot=None,
          scheduler=None, workers=None, progress=None):
    """Train ``model`` for every (optimizer, lr, seed) of ``grid`` on a Dask cluster; return a :class:`Sweep`.

    ``model``: a built-in name, a model file's path, a :class:`~symnet.models.Recipe`, or a Sequential with
    ``data=`` (as a model file's ``data``).  ``grid``: ``{"optimizer": names, "lr": rates, "seed": seeds}``, each a
    list (seeds also a range) or text as on the command line (``"adam,sgd"``, ``"0.01,0.05"``, ``"0:1000"``);
    optimizer and lr default to the model's.  ``epochs`` and ``batch_size`` default to the model's.
    A run succeeds when its final training loss is below ``threshold``, else (classification) when it gets every
    training sample right.  ``out``: a JSONL file the records are appended to as runs finish; runs it already holds
    are not run again.  ``plot``: a figure of success rate against learning rate per optimizer (matplotlib).
    ``scheduler``: an existing scheduler's address (default ``$DASK_SCHEDULER_ADDRESS``, else a LocalCluster of
    ``workers`` processes, one per core by default).  ``progress``: a line on standard error (default: when it is a
    terminal).
    """
    began = time.perf_counter()
    recipe, declaration = _declared(model, data)
    runs = grid_runs(grid, recipe)
    settings = {"model": recipe.name, "max_epochs": _count(recipe.epochs if epochs is None else epochs, "epochs", 0),
                "batch_size": _count(recipe.batch_size if batch_size is None else batch_size, "batch_size", 1)}
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold)):
        raise ConfigurationError(f"threshold must be a finite number (the final loss a success stays below), "
                                 f"got {quoted(threshold)}")
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if workers is not None and address:
        raise ConfigurationError("workers sets the size of the local cluster; a scheduler's cluster has its own")
    if workers is not None:
        _count(workers, "workers", 1)
    if plot is not None:
        plot_path(plot)
    distributed = _distributed()
    out = None if out is None else _output(out)
    recorded = read_records(out) if out is not None else {}
    keys = [_key({**settings, "optimizer": o, "lr": lr, "seed": s}) for o, lr, s in runs]
    pending = [run for run, key in zip(runs, keys) if key not in recorded]
    done, count = {}, 0
    if pending:
        with _client(distributed, address, workers) as client:
            count = len(client.scheduler_info()["workers"])
            done = _run_all(client, distributed, declaration, pending, settings, out, progress,
                            skipped=len(runs) - len(pending))
    records = [recorded.get(key) or done[key] for key in keys]
    summary, criterion = summarize(records, threshold)
    if plot is not None:
        plot = str(plot_summary(summary, plot, f"{recipe.name}: {criterion}"))
    return Sweep(records, summary, criterion, settings, len(done), count, time.perf_counter() - began,
                 None if out is None else str(out), plot)


def _declared(model, data):
    """``(recipe, declaration)``: the recipe, and what workers receive, a built-in's name or the recipe itself."""
    if isinstance(model, Sequential):
        if data is None:
            raise ConfigurationError("a Sequential needs its data: sweep(model, grid, data=(X, Y)) (or a dataset name)")
        recipe = models.Recipe(model.describe(), model, data)
        return recipe, recipe
    if data is not None:
        raise ConfigurationError("data= goes with a Sequential; a built-in model or model file brings its own")
    if isinstance(model, models.Recipe):
        return model, model
    if isinstance(model, str) and model in models.BUILT_IN:
        return models.builtin(model), model
    if isinstance(model, (str, os.PathLike)):
        recipe = models.recipe(str(model))
        return recipe, recipe
    raise ConfigurationError(f"model must be a built-in name ({', '.join(models.BUILT_IN)}), a model file, a "
                             f"Recipe or a Sequential, got {type(model).__name__}")


def _count(value, name, least):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(f"{name} must be an integer ≥ {least}, got {quoted(value)}")
    return value


def grid_runs(grid, recipe):
    """The grid's runs as ``[(optimizer class name, lr, seed)]``, optimizer outermost, seed innermost, each once;
    every optimizer is made with every lr first, so an unknown name or a bad rate fails here, in one line."""
    if not isinstance(grid, dict):
        raise ConfigurationError(f"grid must be a dict with keys {', '.join(GRID_KEYS)}, got {type(grid).__name__}")
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ConfigurationError(f"grid has the key {quoted(unknown[0])}; its keys are {', '.join(GRID_KEYS)}")
    if "seed" not in grid:
        raise ConfigurationError("grid needs seeds, e.g. {'seed': range(100)} (--seeds 0:100)")
    names = _values(grid.get("optimizer", [recipe.optimizer]), "optimizer", str)
    rates = _values(grid.get("lr", [recipe.lr]), "lr", _rate)
    seeds = _seeds(grid["seed"])
    classes = []                  # each name as its class's, so "adam" and "Adam" are one optimizer
    for name in names:
        for rate in rates:
            made = recipe.make_optimizer(name, rate)    # an unknown name, or a rate the rule refuses, fails here
        classes.append(type(made).__name__)
    return [(name, rate, seed) for name in dict.fromkeys(classes) for rate in rates for seed in seeds]


def _values(given, what, convert):
    """A grid entry as a list without repeats: a list, or comma-separated text."""
    items = [part.strip() for part in given.split(",")] if isinstance(given, str) else list(given)
    if not items or any(item == "" for item in items):
        raise ConfigurationError(f"{what} {quoted(given)} gives an empty value; expected comma-separated values")
    return list(dict.fromkeys(convert(item) for item in items))


def _rate(value):
    """A learning rate: a finite number > 0 (the optimizers say the same, but only once made)."""
    try:
        rate = float(value) if isinstance(value, str) else value
    except ValueError:
        rate = None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ConfigurationError(f"learning rate {quoted(value)} is not a number > 0; e.g. --lr 0.01,0.05")
    return float(rate)


def _seeds(given):
    """Seeds from a list or range, or text: ``START:STOP`` (STOP excluded) and single seeds, comma-separated."""
    if not isinstance(given, str):
        seeds = list(given)
    else:
        seeds = []
        for part in given.split(","):
            match = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", part)
            if match is None:
                raise ConfigurationError(f"seeds {quoted(given)}: expected START:STOP or comma-separated integers "
                                         "≥ 0, e.g. 0:1000 or 0,5,9")
            low, high = match.groups()
            seeds += range(int(low), int(high)) if high is not None else [int(low)]
    seeds = list(dict.fromkeys(check_seed(seed, "a seed") for seed in seeds))
    if not seeds:
        raise ConfigurationError(f"seeds {quoted(given)} gives no seed; a range START:STOP needs STOP > START")
    return seeds


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigurationError(f"sweeps run on Dask's distributed scheduler, which is not installed: {INSTALL}") \
            from None
    return distributed


def _output(out):
    path = Path(out)
    if path.is_dir():
        raise ConfigurationError(f"output file {quoted(str(out))} is a folder; give a file name such as runs.jsonl")
    writable_folder(path.parent, "output folder", make=True)
    return path


def _key(record):
    return tuple(record.get(name) for name in RUN_KEYS)


def read_records(path):
    """The records of a JSONL file, by run (:data:`RUN_KEYS`); missing file: none.  A last line without its line
    break (a write cut short by a killed process) is ignored and cut off, so that new lines start on a line of
    their own; any other line that is not a JSON object is an error naming it."""
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    whole = data[:data.rfind(b"\n") + 1]
    if len(whole) < len(data):
        with open(path, "r+b") as stream:
            stream.truncate(len(whole))
    records = {}
    for number, line in enumerate(whole.decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise ConfigurationError(f"{path}:{number} is not a JSON object; mend or remove that line, or give "
                                     "another --out")
        records.setdefault(_key(record), record)
    return records


@contextlib.contextmanager
def _client(distributed, address, workers):
    """A client of the scheduler at ``address``, or of a LocalCluster of ``workers`` single-threaded processes
    (default one per core) started here and closed on leaving; its HTTP server takes a free port, so that two
    sweeps at once do not compete for Dask's default one."""
    if address:
        try:
            client = distributed.Client(address)
        except OSError as error:
            raise ConfigurationError(f"cannot reach the Dask scheduler at {quoted(address)}: {error}") from None
        with client:
            yield client
        return
    with distributed.LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1, preload=[__name__],
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        yield client


def dask_setup(worker):
    """Run by each worker of the local cluster as it starts (Dask's ``preload``): Ctrl-C in the terminal reaches
    the worker processes too, and they leave it to this process, which closes the cluster, rather than each
    printing a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_all(client, distributed, declaration, runs, settings, out, progress, skipped):
    """Submit every run, append each record to ``out`` as it arrives; ``{run key: record}``."""
    if not isinstance(declaration, str):
        declaration = client.submit(_shared, declaration)   # sent once; recomputed if its worker dies
    futures = distributed.as_completed([client.submit(_task, declaration, run, settings, pure=False) for run in runs])
    show = sys.stderr.isatty() if progress is None else progress
    done = {}
    with open(out, "ab", buffering=0) if out is not None else contextlib.nullcontext() as stream:
        try:
            for future in futures:
                record = future.result()
                future.release()      # the worker may forget it: were it to die, it would not run it again
                if stream is not None:   # unbuffered: the whole line in one write call
                    stream.write((json.dumps(_finite(record), allow_nan=False) + "\n").encode("utf-8"))
                done[_key(record)] = record
                if show:
                    sys.stderr.write(f"\rsweep: {len(done) + skipped}/{len(runs) + skipped} runs")
        except distributed.KilledWorker as error:
            raise ConfigurationError(f"a run was lost with its worker several times ({error}); see the workers' "
                                     "logs") from None
        finally:
            if show:
                sys.stderr.write("\n")
    return done


def _shared(declaration):
    """The declaration, as a task's result: workers fetch it once, not with every run."""
    return declaration


def _task(declaration, run, settings):
    """One run on a worker, in the worker's own generated folder; the record, naming the worker."""
    from distributed import get_worker

    worker = get_worker()
    recipe = models.builtin(declaration) if isinstance(declaration, str) else declaration
    optimizer, lr, seed = run
    folder = modules.generated_dir() / "sweep" / f"worker-{re.sub(r'[^A-Za-z0-9_.-]+', '-', str(worker.name))}"
    result = recipe.train(optimizer, lr, seed, settings["max_epochs"], settings["batch_size"], folder)
    return {**result, **settings, "optimizer": optimizer, "lr": lr, "seed": seed, "worker": worker.address}


def _finite(record):
    """NaN and ±infinity as None: each line is strict JSON."""
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in record.items()}


def succeeded(record, threshold=None):
    """Whether a run succeeded: final loss below ``threshold``; without one, every training sample right
    (classification), or None (no criterion)."""
    if threshold is not None:
        return record["final_loss"] is not None and record["final_loss"] < threshold
    if record.get("train_accuracy") is None:
        return None
    return record["train_accuracy"] == 1.0


def wilson(successes, runs, z=Z95):
    """The Wilson score interval of a success rate (95 % by default): unlike p ± z√(p(1−p)/n) it stays in [0, 1]
    and is not empty at 0 or n successes."""
    p, z2 = successes / runs, z * z
    centre = (p + z2 / (2 * runs)) / (1 + z2 / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z2 / (4 * runs * runs)) / (1 + z2 / runs)
    # at 0 (or n) successes the lower (upper) end is exactly 0 (1); centre ∓ half only rounds to it
    return (0.0 if successes == 0 else centre - half), (1.0 if successes == runs else centre + half)


def summarize(records, threshold=None):
    """One row per (optimizer, lr), in the records' order: runs, successes, success rate and its 95 % Wilson
    interval (None without a criterion), final-loss quantiles, median training seconds (a worker's first run of a
    module also compiles it); and the criterion in words."""
    groups = {}
    for record in records:
        groups.setdefault((record["optimizer"], record["lr"]), []).append(record)
    rows = []
    for (optimizer, lr), group in groups.items():
        outcomes = [succeeded(record, threshold) for record in group]
        losses = np.array([np.nan if r["final_loss"] is None else r["final_loss"] for r in group], dtype=float)
        finite = losses[np.isfinite(losses)]
        row = {"optimizer": optimizer, "lr": lr, "runs": len(group)}
        if None in outcomes:
            row.update(successes=None, success_rate=None, ci_low=None, ci_high=None)
        else:
            wins = sum(outcomes)
            low, high = wilson(wins, len(group))
            row.update(successes=wins, success_rate=wins / len(group), ci_low=low, ci_high=high)
        for q in QUANTILES:
            row[f"loss_q{round(q * 100):02d}"] = float(np.quantile(finite, q)) if finite.size else None
        row["seconds_median"] = float(np.median([record["seconds"] for record in group]))
        rows.append(row)
    criterion = (f"final loss < {threshold!r}" if threshold is not None else
                 "every training sample right" if rows and rows[0]["successes"] is not None else
                 "none (give a threshold)")
    return rows, criterion


def plot_summary(rows, path, title):
    """Success rate against learning rate (log axis), one line per optimizer with its Wilson intervals; each
    optimizer's points are shifted by a few percent of the rate so that intervals at one rate do not hide each
    other."""
    path = plot_path(path)
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    names = list(dict.fromkeys(row["optimizer"] for row in rows))
    for number, optimizer in enumerate(names):
        mine = [row for row in rows if row["optimizer"] == optimizer and row["success_rate"] is not None]
        if mine:
            rates = np.array([row["success_rate"] for row in mine])
            errors = [rates - [row["ci_low"] for row in mine], [row["ci_high"] for row in mine] - rates]
            shift = 1.03 ** (number - (len(names) - 1) / 2)
            axes.errorbar([row["lr"] * shift for row in mine], rates, yerr=errors, marker="o", capsize=3,
                          label=optimizer)
    axes.set_xscale("log")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("success rate (95 % Wilson interval)")
    axes.set_title(title[:80])
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
