"""Exercise 4-2 over many seeds: how often each of the eight optimizers solves XOR (2-2-1 ReLU, MSE, lr 0.05,
2,000 full-batch steps), trained once serially in this process and once on a local Dask cluster, with the
wall-clock time of each.  Both give the same final loss for every run, bit for bit.

    python examples/sweep_xor.py [--seeds 1000] [--epochs 2000] [--optimizers adam,sgd] [--lr 0.01,0.05]
                                 [--workers N] [--scheduler ADDRESS] [--quick] [--out DIR]

Needs the sweep extra: pip install 'symnet[sweep]'.  The times include each process's first Numba compile of
each optimizer's module (a few seconds each, the first time only; later runs load Numba's cache).
"""

import argparse
import time
from pathlib import Path

import symnet as sn
from symnet import models
from symnet.declare.optimizers import OPTIMIZERS
from symnet.plotting import pyplot
from symnet.sweep import succeeded


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1000, help="seeds 0 … N−1 per optimizer (default 1000)")
    parser.add_argument("--epochs", type=int, default=2000, help="full-batch steps per run (default 2000)")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS), help="comma-separated (default: all eight)")
    parser.add_argument("--lr", default="0.05", help="comma-separated learning rates (default 0.05, the exercise's)")
    parser.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    parser.add_argument("--scheduler", help="an existing Dask scheduler instead of a local cluster")
    parser.add_argument("--quick", action="store_true", help="small settings: 8 seeds, 200 steps")
    parser.add_argument("--out", default="examples/output", help="folder for the PNG figure")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 8, 200
    return args


def main(argv=None):
    args = arguments(argv)
    recipe = models.builtin("xor")
    names, rates = args.optimizers.split(","), [float(lr) for lr in args.lr.split(",")]
    grid = {"optimizer": names, "lr": rates, "seed": range(args.seeds)}

    began = time.perf_counter()
    serial = {(type(recipe.make_optimizer(name)).__name__, lr, seed): recipe.train(name, lr, seed, args.epochs)
              for name in names for lr in rates for seed in range(args.seeds)}
    serial_seconds = time.perf_counter() - began

    plot = Path(args.out) / "sweep_xor.png" if pyplot() else None
    swept = sn.sweep("xor", grid, epochs=args.epochs, workers=args.workers, scheduler=args.scheduler, plot=plot)
    identical = all(record["final_loss"] == serial[record["optimizer"], record["lr"], record["seed"]]["final_loss"]
                    for record in swept.records)

    print(f"XOR (exercise 4-2), {args.epochs} steps, seeds 0…{args.seeds - 1}; solved = all four points right")
    print(f"{'optimizer':<16} {'lr':>6} {'solved':>9}  {'rate':>5}  95 % interval")
    for row in swept.summary:
        print(f"{row['optimizer']:<16} {row['lr']:>6g} {row['successes']:>4}/{row['runs']:<4}  "
              f"{row['success_rate']:.3f}  {row['ci_low']:.3f}–{row['ci_high']:.3f}")
    print(f"serially, one process: {serial_seconds:.1f} s; on the cluster ({swept.workers} workers, with starting it): "
          f"{swept.seconds:.1f} s; final losses identical: {identical}")
    if swept.plot:
        print(f"figure: {swept.plot}")
    solved_serially = {(name, lr): sum(succeeded(serial[name, lr, seed]) for seed in range(args.seeds))
                       for name, lr in dict.fromkeys(key[:2] for key in serial)}
    return {"summary": swept.summary, "identical": identical, "solved_serially": solved_serially,
            "serial_seconds": serial_seconds, "cluster_seconds": swept.seconds, "workers": swept.workers}


if __name__ == "__main__":
    main()
