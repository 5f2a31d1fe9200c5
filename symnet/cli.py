"""The ``symnet`` command line.

Every command has ``--help`` with an example.  Bad input exits with status 2
and one line on standard error saying what was wrong and what was expected;
with ``--json`` that line is ``{"error": "..."}`` on standard output instead.
"""

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from symnet.errors import SymnetError, SymnetWarning, quoted
from symnet.text import format_table, shorten
from symnet.version import __version__

SIMPLIFIED_WIDTH = 60


JSON_HELP = "print one JSON object (strict JSON: NaN and ±infinity are null)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors like every other error: in one line, with status 2 (see :func:`main`)."""

    def error(self, message):
        raise SymnetError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _fail(message, as_json):
    """Report an error in one line: ``symnet: error: ...`` on stderr, or ``{"error": ...}`` on stdout with --json."""
    message = " ".join(str(message).splitlines())
    if as_json:
        print(json.dumps({"error": message}, ensure_ascii=False))
    else:
        print(f"symnet: error: {message}", file=sys.stderr)
    return 2


def _print_json(result):
    """Every command's --json output: strict JSON (RFC 8259), with NaN and ±infinity written as null."""
    print(json.dumps(_finite(result), indent=2, ensure_ascii=False, allow_nan=False))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _natural(text):
    """argparse type of counts and seeds: an integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {quoted(text)}")
    return value


def _recipe(spec):
    """The recipe of a built-in model or a model file; a file that fails when run gives one line naming it."""
    from symnet import models

    path = Path(spec)
    if spec not in models.BUILT_IN and path.exists() and not (path.is_file() and path.suffix == ".py"):
        raise SymnetError(f"model {quoted(spec)} is {'a folder' if path.is_dir() else 'not a .py file'}; give a "
                          f"built-in name ({', '.join(models.BUILT_IN)}) or a .py file that defines `model`")
    try:
        return models.recipe(spec)
    except SymnetError as error:
        if spec in models.BUILT_IN or str(path) in str(error):
            raise
        raise SymnetError(f"model file {quoted(spec)}: {error}") from None
    except (Exception, SystemExit) as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise SymnetError(f"model file {quoted(spec)} failed when run: {type(error).__name__}: {first}") from None


def _command(subparsers, name, help_text, example):
    return subparsers.add_parser(name, help=help_text, description=help_text,
                                 epilog=f"example:\n  {example}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser():
    parser = _Parser(prog="symnet", description="Symbolic differentiation and Numba code generation for neural networks.")
    parser.add_argument("--version", action="version", version=f"symnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    derive = _command(subparsers, "derive", "Derive the gradient of an expression; print it, its LaTeX and its value.",
                      'symnet derive "1/(exp(-(w*x+b))+1)" --wrt w,b --at x=1,w=0,b=0')
    derive.add_argument("expression", help="expression text, e.g. 'x*tanh(log(1+exp(x)))'")
    derive.add_argument("--wrt", required=True, help="comma-separated variables, e.g. w,b")
    derive.add_argument("--at", help="point to evaluate at, e.g. x=1,w=0,b=0 (every symbol needs a value)")
    derive.add_argument("--latex", action="store_true", help="print LaTeX of each derivative and the CSE'd form")
    derive.add_argument("--hessian", action="store_true", help="also the second derivatives ∂²f/∂v∂w (and their "
                        "values with --at)")
    derive.add_argument("--json", action="store_true", help=JSON_HELP)
    derive.set_defaults(run=_derive)

    swell = _command(subparsers, "swell", "Show expression swell: operation counts of naive, CSE'd and reverse-mode derivatives.",
                     "symnet swell --logistic-map 10")
    swell.add_argument("expression", nargs="?", help="expression text (or use --logistic-map)")
    swell.add_argument("--wrt", help="variable(s) for a user expression, e.g. x")
    swell.add_argument("--logistic-map", type=int, metavar="N", help="the table of Baydin et al. for l_1..l_N")
    swell.add_argument("--network", metavar="MODEL", help="a small model (built-in name or .py file): its whole "
                       "unrolled gradient, naive vs CSE vs reverse vs layer-level")
    swell.add_argument("--samples", type=int, default=4, help="samples of the model's data in the unrolled loss "
                                                               "(with --network; default 4)")
    swell.add_argument("--json", action="store_true", help='print {"rows": [...]} (strict JSON: NaN and ±infinity '
                       'are null)')
    swell.set_defaults(run=_swell)

    train = _command(subparsers, "train", "Train a built-in model (xor, spirals, moons, circles, regression, digits, "
                     "digits_cnn, sines_attention, adding_rnn) or a model file; print the final metrics.", "symnet train digits --epochs 30 --json")
    train.add_argument("model", help="built-in model name, or a .py file defining `model` (and optionally `data`)")
    train.add_argument("--optimizer", help="GD, SGD, Momentum, Nesterov, AdaGrad, RMSProp, RMSPropNesterov, Adam or "
                                           "newton_cg (Hessian-free Newton; give --lr 1) (default: the model's, Adam "
                                           "for the built-ins)")
    train.add_argument("--lr", type=float, help="learning rate (default: the model's)")
    train.add_argument("--epochs", type=int, help="total number of epochs, also when resuming (default: the model's)")
    train.add_argument("--batch-size", type=int, help="samples per step (default: the model's)")
    train.add_argument("--seed", type=int, help="seed of initialisation, split and shuffling (default 0)")
    train.add_argument("--checkpoint", metavar="PATH", help="save a .npz checkpoint after every epoch")
    train.add_argument("--resume", metavar="PATH", help="continue from a checkpoint, with the settings it was trained "
                       "with (optimizer, --lr, --batch-size, --seed, ...; a change is refused)")
    train.add_argument("--allow-changes", action="store_true", help="with --resume: go on with changed settings "
                       "(the run no longer repeats an uninterrupted one; the change is recorded in the checkpoint)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument("--json", action="store_true", help="print one JSON object with the results")
    train.set_defaults(run=_train)

    sweep = _command(subparsers, "sweep", "Train a model for every optimizer, learning rate and seed of a grid on "
                     "Dask's distributed scheduler; print the success rate per configuration.",
                     "symnet sweep xor --optimizer adam,sgd --lr 0.01,0.05 --seeds 0:1000 --out runs.jsonl")
    sweep.add_argument("model", help="built-in model name, or a .py file defining `model` (and optionally `data`)")
    sweep.add_argument("--optimizer", help="comma-separated optimizer names, e.g. adam,sgd (default: the model's)")
    sweep.add_argument("--lr", help="comma-separated learning rates, e.g. 0.01,0.05 (default: the model's)")
    sweep.add_argument("--seeds", required=True, help="START:STOP (STOP excluded) or comma-separated seeds, "
                       "e.g. 0:1000 or 0,5,9")
    sweep.add_argument("--epochs", type=_natural, help="epochs of every run (default: the model's)")
    sweep.add_argument("--batch-size", type=int, help="samples per step (default: the model's)")
    sweep.add_argument("--threshold", type=float, help="a run succeeds when its final training loss is below this "
                       "(default for classification: every training sample right)")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786 "
                       "(default: $DASK_SCHEDULER_ADDRESS, else a local cluster)")
    sweep.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    sweep.add_argument("--out", metavar="FILE.jsonl", help="append one JSON line per run as it finishes; runs the "
                       "file already holds are skipped")
    sweep.add_argument("--plot", metavar="FILE.png", help="draw success rate against learning rate per optimizer "
                       "(needs matplotlib)")
    sweep.add_argument("--json", action="store_true", help=JSON_HELP)
    sweep.set_defaults(run=_sweep)

    compare = _command(subparsers, "compare", "Compare symbolic, numeric (finite differences, Richardson, complex "
                       "step) and automatic (forward, reverse) differentiation: accuracy against mpmath, and cost.",
                       "symnet compare 'exp(x)' --wrt x --at x=0 --steps 0.1,0.01,0.001")
    compare.add_argument("expression", nargs="?", help="expression text, e.g. '1/(exp(-(w*x+b))+1)'")
    compare.add_argument("--wrt", help="comma-separated variables, e.g. w,b")
    compare.add_argument("--at", help="the point: a value for every symbol, e.g. x=1,w=0,b=0")
    compare.add_argument("--steps", help="finite-difference steps, comma-separated (default 1e-1 … 1e-13)")
    compare.add_argument("--trace", action="store_true", help="print the forward- and reverse-mode step tables")
    compare.add_argument("--json", action="store_true", help=JSON_HELP)
    compare.add_argument("--plot", metavar="FILE.png", help="draw relative error against step (needs matplotlib; "
                         "png, pdf, svg or another format matplotlib writes)")
    compare.add_argument("--peers", action="store_true", help="add PyTorch's and JAX's autograd where installed")
    compare.add_argument("--network", metavar="MODEL", help="instead of an expression: the cost of a whole gradient "
                         "of a small model's unrolled loss, by forward AD, central differences and reverse AD")
    compare.set_defaults(run=_compare)

    bench = _command(subparsers, "bench", "Time the generated training step against hand-written NumPy and Numba "
                     "steps (and PyTorch, JAX and PyTensor with --peers): µs per SGD step, medians, ratios.",
                     "symnet bench --configs xor,digits --peers")
    bench.add_argument("--configs", help="comma-separated: xor, tiny, digits, deep, mnist, cnn (default: all)")
    bench.add_argument("--peers", action="store_true", help="also time PyTorch, JAX and PyTensor where installed")
    bench.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="symnet's network dtype (default float64); the hand-written references stay float64")
    bench.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5); 1 is a quick "
                       "smoke run without idle pauses, its numbers rough")
    bench.add_argument("--no-hvp", dest="hvp", action="store_false",
                       help="leave out the Hessian-vector product table (net.hvp against net.loss_and_grad and, with "
                            "--peers, JAX's jvp of grad), which compiles one more module per config")
    bench.add_argument("--json", action="store_true", help=JSON_HELP)
    bench.set_defaults(run=_bench)

    report = _command(subparsers, "report", "Write a Markdown report of a model (formulas in $$…$$, PNGs): "
                      "back-propagation equations, derived derivatives, swell, generated code, training curves.",
                      "symnet report digits --train --out report")
    report.add_argument("model", help="built-in model name, or a .py file defining `model`")
    report.add_argument("--out", default="report", help="folder for the Markdown file and its PNGs, created if "
                        "missing (default report)")
    report.add_argument("--train", action="store_true", help="train the model and add curves and final metrics")
    report.add_argument("--epochs", type=_natural, help="epochs with --train (default: the model's)")
    report.add_argument("--seed", type=_natural, default=0, help="seed of the split, initialisation and shuffles")
    report.set_defaults(run=_report)

    latex = _command(subparsers, "latex", "Print a model's back-propagation equations, with the derived derivatives "
                     "of its activations and loss, or an optimizer's update rule, as LaTeX.",
                     "symnet latex digits\n  symnet latex --optimizer adam")
    latex.add_argument("model", nargs="?", help="built-in model name, or a .py file defining `model`")
    latex.add_argument("--summary", action="store_true", help="also print the plain-text summary of the model")
    latex.add_argument("--second-order", action="store_true", help="also print the R-operator's equations of the "
                       "model's exact Hessian-vector product (net.hvp)")
    latex.add_argument("--optimizer", metavar="NAME", help="print this optimizer's update rule as the notes write it: "
                       "GD, SGD, Momentum, Nesterov, AdaGrad, RMSProp, RMSPropNesterov, Adam or newton_cg (any case)")
    latex.add_argument("--json", action="store_true", help=JSON_HELP)
    latex.set_defaults(run=_latex)
    return parser


def _compare(args):
    from symnet.compare import compare, errors_against, peer_gradients, plot_errors, plot_path

    if args.network is not None:
        given = [option for option, value in (("EXPRESSION", args.expression), ("--wrt", args.wrt), ("--at", args.at),
                                              ("--steps", args.steps), ("--plot", args.plot),
                                              ("--trace", args.trace or None), ("--peers", args.peers or None))
                 if value is not None]
        if given:
            raise SymnetError(f"--network MODEL times a whole model's gradient and takes no {', '.join(given)}; "
                              "drop them, or drop --network to compare one EXPRESSION")
        return _compare_network(args)
    if args.expression is None or args.wrt is None or args.at is None:
        raise SymnetError("compare needs an EXPRESSION with --wrt and --at (or --network MODEL)")
    if args.plot is not None:
        plot_path(args.plot)
    steps = None
    if args.steps is not None:
        steps = [s.strip() for s in args.steps.split(",") if s.strip()]
        if not steps:
            raise SymnetError(f"--steps {quoted(args.steps)} gives no step; expected comma-separated positive "
                              "numbers, e.g. 0.1,0.01,0.001 (or leave --steps out for 1e-1 … 1e-13)")
    comparison = compare(args.expression, args.wrt, {s.name: v for s, v in _point(args).items()}, steps)
    result = comparison.as_dict()
    if args.peers:
        result["peers"] = peer_gradients(comparison)
    if args.plot is not None:
        result["plot"] = str(plot_errors(comparison, args.plot))
    if args.json:
        result["forward_trace"] = comparison.forward_trace() if args.trace else None
        result["reverse_trace"] = comparison.reverse_trace() if args.trace else None
        _print_json(result)
        return 0
    print(f"f = {result['expression']}   at {args.at}")
    print("reference: mpmath.diff at 50 digits; relative errors against it\n")
    rows = comparison.rows()
    for peer, values in result.get("peers", {}).items():
        if isinstance(values, dict):
            rows.append(comparison.row(f"{peer} autograd", "-", values, errors_against(values, result["reference"]),
                                       None))
    print(format_table(rows, list(rows[0])))
    estimate = result["optimal_step_estimate"]
    print("\nbest step: " + ", ".join(f"{m} {h}" for m, h in result["best_step"].items())
          + f"; classic estimates √ε·max(1,|x|) = {estimate['one_sided']:.1e} (one-sided), "
          f"ε^(1/3)·max(1,|x|) = {estimate['central']:.1e} (central)")
    print(f"complex step: {result['complex_step']}")
    print("cost per gradient: " + "; ".join(f"{k}: {v}" for k, v in result["evaluations"].items()))
    ops = result["ops"]
    print(f"operations: f tree {ops['forward']}, DAG steps {ops['dag_steps']}, naive gradient {ops['naive']}, "
          f"after CSE {ops['cse']}, reverse-mode program {ops['reverse']}")
    for peer, values in result.get("peers", {}).items():
        if not isinstance(values, dict):
            print(f"peer {peer}: {values}")
    if args.trace:
        for title, trace in (("forward mode (dual numbers), one column per input direction",
                              comparison.forward_trace()),
                             ("reverse mode (adjoints ∂f/∂h_k), from the output back", comparison.reverse_trace())):
            print(f"\n{title}:")
            print(format_table(trace, list(trace[0])))
    if args.plot is not None:
        print(f"\nplot: {result['plot']}")
    return 0


def _point(args):
    """The --at point, each name a symbol of the expression as written."""
    from symnet.declare.parse import parse_expression, parse_point

    return parse_point(args.at, parse_expression(args.expression, evaluate=False).free_symbols)


def _compare_network(args):
    from symnet.compare import cost_scaling
    from symnet.network import unrolled_loss

    recipe = _recipe(args.network)
    X, Y, *_ = recipe.prepared_data()
    expr, symbols = unrolled_loss(recipe.model, X[:4], Y[:4])
    params = recipe.model.compile().init(seed=0)
    row = cost_scaling(expr, symbols, dict(zip(symbols, params.flat)))
    row = {"network": recipe.model.describe(), **row}
    if args.json:
        _print_json(row)
        return 0
    print(f"{row['network']}: loss on 4 samples as one expression in {row['inputs']} parameters "
          f"({row['dag_steps']} DAG steps); one evaluation {row['function_seconds'] * 1e6:.0f} µs")
    print(f"whole gradient, in evaluations of the loss: forward AD {row['forward_ad']:.1f}, "
          f"central differences {row['central']:.1f}, reverse AD {row['reverse_ad']:.1f}")
    return 0


def _bench(args):
    import os
    import platform

    from symnet import bench

    names = None
    if args.configs is not None:
        names = [name.strip() for name in args.configs.split(",") if name.strip()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise SymnetError(f"--configs names {quoted(twice[0])} twice; give each config once")
        if not names:
            raise SymnetError(f"--configs {quoted(args.configs)} names no config; expected comma-separated names "
                              f"from {', '.join(bench.CONFIGS)} (or leave --configs out for all)")
    if args.rounds < 1:
        raise SymnetError(f"--rounds must be at least 1, got {args.rounds}")
    result = bench.run(names, peers=args.peers, rounds=args.rounds, dtype=args.dtype, hvp=args.hvp)
    result["machine"] = {"python": platform.python_version(), "processor": bench.processor(), "cpus": os.cpu_count()}
    if args.json:
        _print_json(result)
        return 0
    rows = []
    for row in result["rows"]:
        shown = {"config": row["config"], "network": f"{row['sizes']} {row['hidden']} {row['loss']} ×{row['batch']}",
                 "net.step µs": f"{row['symnet_net_step']:.1f}", "in epoch µs": f"{row['symnet_epoch']:.2f}",
                 "raw step µs": f"{row['symnet']:.1f}", "NumPy µs": f"{row['numpy']:.1f}",
                 "Numba µs": f"{row['numba']:.1f}", "net.step/best ref": f"{row['ratio_to_best_reference']:.2f}"}
        for peer, value in row.get("peers", {}).items():
            if isinstance(value, float):
                shown[f"{peer} µs"] = f"{value:.1f}"
        shown["BLAS floor µs"] = f"{row['blas_floor']:.1f}"
        shown["parallel=True µs"] = f"{row['symnet_parallel']:.1f}"
        shown["cold / warm start s"] = f"{row['cold_start_seconds']:.1f} / {row['warm_start_seconds']:.2f}"
        rows.append(shown)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print(format_table([{c: row.get(c, "-") for c in columns} for row in rows], columns))
    print("\nnet.step µs: the call users make (checks included); in epoch: per step inside one train_epoch call "
          "(what sn.fit runs); raw step: the generated train_step called directly. Ratios use net.step. BLAS "
          "floor: the step's matrix products alone, each timed as a NumPy product. parallel=True: the module with "
          "prange activation loops (the same as raw step where it has none). Times are medians over "
          f"{args.rounds} interleaved rounds. Cold start: generating the module and Numba compiling it; warm: a new "
          f"process finding it cached (after imports). symnet in {args.dtype}, the references in float64. Machine: {result['machine']['processor']}, "
          f"{result['machine']['cpus']} CPUs, Python {result['machine']['python']}.")
    absent = sorted({f"{peer}: {value}" for row in result["rows"] for peer, value in row.get("peers", {}).items()
                     if not isinstance(value, float)})
    if absent:
        print("peers skipped: " + "; ".join(absent))
    if any("hvp" in row for row in result["rows"]):
        _print_hvp_table(result, bench.HVP_TARGET)
    return 0


def _print_hvp_table(result, target):
    """The Hessian-vector product table of ``symnet bench`` (issue 18)."""
    rows = []
    for row in result["rows"]:
        report = row["hvp"]
        shown = {"config": row["config"], "loss_and_grad µs": f"{report['loss_and_grad']:.1f}",
                 "hvp µs": f"{report['hvp']:.1f}", "hvp/loss_and_grad": f"{report['ratio']:.2f}",
                 f"≤ {target:g}×": "yes" if report["within_target"] else "NO",
                 "vs differences": f"{report['disagreement']:.1e}"}
        if isinstance(report.get("jax"), dict):
            shown.update({"JAX grad µs": f"{report['jax']['grad']:.1f}", "JAX hvp µs": f"{report['jax']['hvp']:.1f}",
                          "JAX hvp/grad": f"{report['jax']['ratio']:.2f}",
                          "vs JAX": f"{report['jax']['disagreement']:.1e}",
                          "hvp/JAX hvp": f"{report['hvp_over_jax_hvp']:.2f}"})
        shown["hvp compile s"] = f"{report['cold_start_seconds']:.1f}"
        rows.append(shown)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print("\nHessian-vector products (issue 18)\n")
    print(format_table([{c: row.get(c, "-") for c in columns} for row in rows], columns))
    print(f"\nnet.hvp (H·v of the mean loss, R-operator, a fixed random v) and net.loss_and_grad on the step's batch "
          f"and starting parameters, in the same interleaved rounds; target: hvp ≤ {target:g} × loss_and_grad. "
          f"vs differences: max |H·v − Richardson central differences of the float64 gradient along v| over "
          f"max |H·v| (checked before timing). JAX (with --peers): jax.jit of value_and_grad and of "
          f"jax.jvp(jax.grad(loss)) on the JAX step peer's loss, checked against symnet's H·v; hvp compile: "
          f"generating and compiling the second-order module (first net.hvp).")
    skipped = sorted({f"jax: {row['hvp']['jax']}" for row in result["rows"]
                      if isinstance(row["hvp"].get("jax"), str)})
    if skipped:
        print("HVP peers skipped: " + "; ".join(skipped))


def _report(args):
    from symnet.report import write_report

    if args.epochs is not None and not args.train:
        raise SymnetError("--epochs sets the training of --train; add --train or drop --epochs")
    recipe = _recipe(args.model)
    print(f"report: {write_report(recipe, args.out, train=args.train, seed=args.seed, epochs=args.epochs)}")
    return 0


def _latex(args):
    from symnet.declare.optimizers import get as get_optimizer

    if args.model is None and args.optimizer is None:
        raise SymnetError("latex needs a MODEL (a built-in name or a .py file), --optimizer NAME, or both")
    for flag, given in (("--summary", args.summary), ("--second-order", args.second_order)):
        if given and args.model is None:
            raise SymnetError(f"{flag} describes a MODEL; give one, or drop {flag}")
    optimizer = None if args.optimizer is None else get_optimizer(args.optimizer)   # an unknown name fails first
    result = {}
    if args.model is not None:
        recipe = _recipe(args.model)
        result.update(model=recipe.name, network=recipe.model.describe(),
                      equations=recipe.model.latex().splitlines())
        if args.summary:
            result["summary"] = recipe.model.summary()
        if args.second_order:
            result["second_order"] = recipe.model.second_order_latex().splitlines()
    if optimizer is not None:
        result["optimizer"] = {"name": type(optimizer).__name__,
                               "hyperparameters": dict(zip((h.name for h in optimizer.hyperparameters),
                                                           optimizer.values())),
                               "symbols": optimizer.latex_names(), "rule": optimizer.latex()}
    if args.json:
        _print_json(result)
        return 0
    if "summary" in result:
        print(result["summary"])
        print()
    if "equations" in result:
        print("\n".join(result["equations"]))
    if "second_order" in result:
        print("\n% Hessian-vector product H v: the R-operator R{·} = d/dε (·)(θ + εv) at ε = 0, R{θ} = v")
        print("\n".join(result["second_order"]))
    if optimizer is not None:
        if "equations" in result:
            print()
        legend = ", ".join(f"{symbol} = {name}" for name, symbol in result["optimizer"]["symbols"].items())
        print(f"% {optimizer!r}" + (f"; {legend}" if legend else ""))
        print("\n".join(result["optimizer"]["rule"]))
    return 0


def _derive(args):
    from symnet.expression import derive

    derivation = derive(args.expression, args.wrt)
    result = {
        "expression": str(derivation.expr),
        "wrt": derivation.names,
        "expressions": {v.name: str(g) for v, g in zip(derivation.wrt, derivation.simplified)},
        "latex": derivation.latex(),
        "cse": derivation.cse_latex(),
        "ops": {k: derivation.ops[k] for k in ("forward", "forward_dag", "naive", "cse", "reverse")},
    }
    if args.at is not None:
        point = _point(args)
        missing = sorted(s.name for s in derivation.expr.free_symbols if s not in point)
        if missing:
            raise SymnetError(f"--at gives no value for {', '.join(missing)}; every symbol of the expression needs one")
        result["at"] = {s.name: v for s, v in point.items()}
        result["gradient"] = derivation.gradient_at({s.name: v for s, v in point.items() if s in derivation.expr.free_symbols})
    hessian = derivation.hessian() if args.hessian else None
    if hessian is not None:
        pairs = hessian.pairs()
        names = [v.name for v in derivation.wrt]
        result["hessian"] = {f"{names[k]},{names[l]}": str(hessian.simplified[k, l]) for k, l in pairs}
        result["hessian_latex"] = hessian.latex()
        if args.at is not None:
            matrix = hessian.at({s.name: v for s, v in point.items() if s in derivation.expr.free_symbols})
            result["hessian_at"] = matrix.tolist()
    if args.json:
        _print_json(result)
        return 0
    print(f"f = {result['expression']}")
    for name in derivation.names:
        value = f"    = {result['gradient'][name]!r} at {args.at}" if args.at is not None else ""
        print(f"∂f/∂{name} = {result['expressions'][name]}{value}")
    ops = result["ops"]
    print(f"operations: naive {ops['naive']}, after CSE {ops['cse']}, reverse mode {ops['reverse']} "
          f"(forward tree {ops['forward']}, forward DAG {ops['forward_dag']})")
    if hessian is not None:
        for (k, l), (pair, text) in zip(hessian.pairs(), result["hessian"].items()):
            first, second = pair.split(",")
            name = f"∂²f/∂{first}²" if k == l else f"∂²f/∂{first}∂{second}"
            value = f"    = {result['hessian_at'][k][l]!r} at {args.at}" if args.at is not None else ""
            print(f"{name} = {text}{value}")
    if args.latex:
        print("\nLaTeX:")
        for name, text in result["latex"].items():
            print(f"  \\frac{{\\partial f}}{{\\partial {name}}} = {text}")
        print("\nCSE'd form:")
        for line in result["cse"]:
            print(f"  {line}")
        if hessian is not None:
            print(f"\nHessian:\n  {result['hessian_latex']}")
    return 0


def _swell(args):
    from symnet.declare.parse import as_expression
    from symnet.expression import as_symbols
    from symnet.swell import LOGISTIC_MAP_MAX, logistic_map_swell, swell_row

    if sum(x is not None for x in (args.logistic_map, args.expression, args.network)) != 1:
        raise SymnetError("give one of: an EXPRESSION with --wrt, --logistic-map N, --network MODEL")
    if args.network is not None:
        rows = [_network_swell(args.network, args.samples)]
    elif args.logistic_map is not None:
        if not 1 <= args.logistic_map <= LOGISTIC_MAP_MAX:
            raise SymnetError(f"--logistic-map takes N from 1 to {LOGISTIC_MAP_MAX} (each level takes about 4 times "
                              f"as long: 11 takes seconds, 12 about a minute), got {args.logistic_map}")
        rows = logistic_map_swell(args.logistic_map)
    else:
        if not args.wrt:
            raise SymnetError("a user expression needs --wrt, e.g. --wrt x")
        expr = as_expression(args.expression)
        rows = [dict(variable=v.name, **swell_row(expr, v)) for v in as_symbols(args.wrt)]
    if args.json:
        _print_json({"rows": rows})
        return 0
    if args.network is not None:
        print(format_table(rows, list(rows[0])))
        return 0
    columns = [c for c in rows[0] if c != "simplified"]
    shown = [dict(r, simplified=shorten(r["simplified"], SIMPLIFIED_WIDTH)) for r in rows]
    print(format_table(shown, columns + ["simplified"]))
    return 0


def _network_swell(spec, samples):
    from symnet.swell import network_swell

    recipe = _recipe(spec)
    if samples < 1:
        raise SymnetError(f"--samples must be at least 1, got {samples}")
    X, Y, *_ = recipe.prepared_data()
    return network_swell(recipe.model, X[:samples], Y[:samples])


def _train(args):
    from symnet.network import check_seed
    from symnet.train.checkpoint import load

    recipe = _recipe(args.model)
    seed = None if args.seed is None else check_seed(args.seed, "--seed")
    if args.resume and seed is None:
        seed = load(args.resume, recipe.model, require=("seed",)).metadata["seed"]
    result = recipe.train(args.optimizer, args.lr, 0 if seed is None else seed, args.epochs, args.batch_size,
                          verbose=False if (args.quiet or args.json) else None, checkpoint=args.checkpoint,
                          resume=args.resume, allow_changes=args.allow_changes)
    if args.json:
        _print_json(result)
        return 0
    print(f"{recipe.name}: {result['network']}, {result['optimizer']}, {result['epochs']} epochs "
          f"in {result['seconds']:.2f} s{' (with Numba compiling the new module)' if result['new_module'] else ''} "
          f"(+{result['compile_seconds']:.2f} s to derive, generate and load)")
    print(f"  loss: train {result['final_loss']:.5g}, test {result['test_loss']:.5g}")
    if "test_accuracy" in result:
        print(f"  accuracy: train {result['train_accuracy']:.4f}, test {result['test_accuracy']:.4f}")
    for key in ("note", "stopped", "checkpoint"):
        if result.get(key):
            print(f"  {key}: {result[key]}")
    print(f"  generated module: {result['generated_module']}")
    return 0


def _sweep(args):
    from symnet import models
    from symnet.sweep import sweep

    grid = {key: value for key, value in (("optimizer", args.optimizer), ("lr", args.lr), ("seed", args.seeds))
            if value is not None}
    model = args.model if args.model in models.BUILT_IN else _recipe(args.model)
    result = sweep(model, grid, epochs=args.epochs, batch_size=args.batch_size, threshold=args.threshold,
                   out=args.out, plot=args.plot, scheduler=args.scheduler, workers=args.workers)
    summary = result.as_dict()
    if args.json:
        _print_json(summary)
        return 0

    def share(value):
        return "-" if value is None else f"{value:.3f}"

    def loss(value):
        return "-" if value is None else f"{value:.3g}"

    rows = [{"optimizer": row["optimizer"], "lr": f"{row['lr']:g}", "runs": str(row["runs"]),
             "success": share(row["success_rate"]), "95% interval": f"{share(row['ci_low'])}–{share(row['ci_high'])}",
             "loss q05": loss(row["loss_q05"]), "median": loss(row["loss_q50"]), "q95": loss(row["loss_q95"]),
             "s/run": f"{row['seconds_median']:.3f}"} for row in result.summary]
    workers = f"{summary['workers']} worker{'s' if summary['workers'] != 1 else ''}"
    where = f"on {workers}" if summary["new"] else "(all recorded before)"
    print(f"{summary['model']}: {summary['runs']} runs of {summary['max_epochs']} epochs ({summary['new']} new, "
          f"{summary['skipped']} recorded before) in {summary['seconds']:.1f} s {where}; "
          f"success: {summary['criterion']}")
    print(format_table(rows, list(rows[0])))
    for key in ("out", "plot"):
        if summary[key]:
            print(f"{key}: {summary[key]}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings in one line on standard error: ``symnet: warning: ...``."""
    text = " ".join(str(message).splitlines())
    print(f"symnet: warning: {text}" if issubclass(category, SymnetWarning) else
          f"symnet: warning: {category.__name__}: {text}", file=sys.stderr)


def main(argv=None):
    """Entry point of the ``symnet`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("always", SymnetWarning)
            warnings.showwarning = _show_warning
            return args.run(args)
    except SymnetError as error:
        return _fail(error, as_json)
    except KeyboardInterrupt:
        return _fail("interrupted", as_json)


if __name__ == "__main__":
    sys.exit(main())
