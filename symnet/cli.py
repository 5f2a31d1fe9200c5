"""The ``symnet`` command line.

Every command has ``--help`` with an example.  Bad input exits with status 2
and one line on standard error saying what was wrong and what was expected.
"""

import argparse
import json
import sys

import numpy as np

from symnet.errors import SymnetError

SIMPLIFIED_WIDTH = 60


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, with status 2."""

    def error(self, message):
        raise SystemExit(_fail(f"{self.prog}: {message} (see '{self.prog} --help')"))


def _fail(message):
    print(f"symnet: error: {message}", file=sys.stderr)
    return 2


def _command(subparsers, name, help_text, example):
    return subparsers.add_parser(name, help=help_text, description=help_text,
                                 epilog=f"example:\n  {example}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser():
    parser = _Parser(prog="symnet", description="Symbolic differentiation and Numba code generation for neural networks.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    derive = _command(subparsers, "derive", "Derive the gradient of an expression; print it, its LaTeX and its value.",
                      'symnet derive "1/(exp(-(w*x+b))+1)" --wrt w,b --at x=1,w=0,b=0')
    derive.add_argument("expression", help="expression text, e.g. 'x*tanh(log(1+exp(x)))'")
    derive.add_argument("--wrt", required=True, help="comma-separated variables, e.g. w,b")
    derive.add_argument("--at", help="point to evaluate at, e.g. x=1,w=0,b=0 (every symbol needs a value)")
    derive.add_argument("--latex", action="store_true", help="print LaTeX of each derivative and the CSE'd form")
    derive.add_argument("--json", action="store_true", help="print one JSON object")
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
    swell.add_argument("--json", action="store_true", help='print {"rows": [...]}')
    swell.set_defaults(run=_swell)

    train = _command(subparsers, "train", "Train a built-in model (xor, spirals, moons, circles, regression, digits) "
                     "or a model file; print the final metrics.", "symnet train digits --epochs 30 --json")
    train.add_argument("model", help="built-in model name, or a .py file defining `model` (and optionally `data`)")
    train.add_argument("--optimizer", help="GD, SGD, Momentum, Nesterov, AdaGrad, RMSProp, RMSPropNesterov or Adam "
                                           "(default: the model's, Adam for the built-ins)")
    train.add_argument("--lr", type=float, help="learning rate (default: the model's)")
    train.add_argument("--epochs", type=int, help="total number of epochs, also when resuming (default: the model's)")
    train.add_argument("--batch-size", type=int, help="samples per step (default: the model's)")
    train.add_argument("--seed", type=int, help="seed of initialisation, split and shuffling (default 0)")
    train.add_argument("--checkpoint", metavar="PATH", help="save a .npz checkpoint after every epoch")
    train.add_argument("--resume", metavar="PATH", help="continue from a checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument("--json", action="store_true", help="print one JSON object with the results")
    train.set_defaults(run=_train)

    latex = _command(subparsers, "latex", "Print a model's back-propagation equations, with the derived derivatives "
                     "of its activations and loss, as LaTeX.", "symnet latex digits")
    latex.add_argument("model", help="built-in model name, or a .py file defining `model`")
    latex.add_argument("--summary", action="store_true", help="also print the plain-text summary of the model")
    latex.set_defaults(run=_latex)
    return parser


def _latex(args):
    from symnet import models

    model = models.recipe(args.model).model
    if args.summary:
        print(model.summary())
        print()
    print(model.latex())
    return 0


def _derive(args):
    from symnet.declare.parse import parse_point
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
    if args.at:
        point = parse_point(args.at)
        missing = sorted(s.name for s in derivation.expr.free_symbols if s not in point)
        if missing:
            raise SymnetError(f"--at gives no value for {', '.join(missing)}; every symbol of the expression needs one")
        result["at"] = {s.name: v for s, v in point.items()}
        result["gradient"] = derivation.gradient_at({s.name: v for s, v in point.items() if s in derivation.expr.free_symbols})
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"f = {result['expression']}")
    for name in derivation.names:
        value = f"    = {result['gradient'][name]!r} at {args.at}" if args.at else ""
        print(f"∂f/∂{name} = {result['expressions'][name]}{value}")
    ops = result["ops"]
    print(f"operations: naive {ops['naive']}, after CSE {ops['cse']}, reverse mode {ops['reverse']} "
          f"(forward tree {ops['forward']}, forward DAG {ops['forward_dag']})")
    if args.latex:
        print("\nLaTeX:")
        for name, text in result["latex"].items():
            print(f"  \\frac{{\\partial f}}{{\\partial {name}}} = {text}")
        print("\nCSE'd form:")
        for line in result["cse"]:
            print(f"  {line}")
    return 0


def _swell(args):
    from symnet.expression import as_expression, as_symbols, logistic_map_swell, swell_row
    from symnet.report import format_table

    if sum(x is not None for x in (args.logistic_map, args.expression, args.network)) != 1:
        raise SymnetError("give one of: an EXPRESSION with --wrt, --logistic-map N, --network MODEL")
    if args.network is not None:
        rows = [_network_swell(args.network, args.samples)]
    elif args.logistic_map is not None:
        if not 1 <= args.logistic_map <= 14:
            raise SymnetError(f"--logistic-map takes N from 1 to 14, got {args.logistic_map}")
        rows = logistic_map_swell(args.logistic_map)
    else:
        if not args.wrt:
            raise SymnetError("a user expression needs --wrt, e.g. --wrt x")
        expr = as_expression(args.expression)
        rows = [dict(variable=v.name, **swell_row(expr, v)) for v in as_symbols(args.wrt)]
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
        return 0
    if args.network is not None:
        print(format_table(rows, list(rows[0])))
        return 0
    columns = [c for c in rows[0] if c != "simplified"]
    shown = [dict(r, simplified=_shorten(r["simplified"])) for r in rows]
    print(format_table(shown, columns + ["simplified"]))
    return 0


MAX_UNROLLED_PARAMETERS = 100


def _network_swell(spec, samples):
    from symnet import models
    from symnet.expression import network_swell

    recipe = models.recipe(spec)
    if samples < 1:
        raise SymnetError(f"--samples must be at least 1, got {samples}")
    size = sum(int(np.prod(shape)) for layer in recipe.model.layers for _, shape in layer.parameters)
    if size > MAX_UNROLLED_PARAMETERS:
        raise SymnetError(f"{recipe.model.describe()} has {size} parameters; the unrolled gradient is for networks "
                          f"of at most {MAX_UNROLLED_PARAMETERS} (its naive form grows exponentially with depth)")
    X, Y, *_ = recipe.prepared_data()
    return network_swell(recipe.model, X[:samples], Y[:samples])


def _train(args):
    import time

    from symnet import models
    from symnet.train.checkpoint import load
    from symnet.train.loop import accuracy, fit, is_classification

    began = time.perf_counter()
    recipe = models.recipe(args.model)
    seed = args.seed
    if args.resume and seed is None:
        seed = load(args.resume, recipe.model).metadata.get("seed", 0)
    seed = 0 if seed is None else seed
    X_train, Y_train, X_test, Y_test, note = recipe.prepared_data(seed=seed)
    net = recipe.model.compile(optimizer=recipe.make_optimizer(args.optimizer, args.lr))
    compiled = time.perf_counter()
    params = net.init(seed=seed)
    epochs = recipe.epochs if args.epochs is None else args.epochs
    history = fit(net, params, X_train, Y_train, epochs=epochs, batch_size=args.batch_size or recipe.batch_size,
                  seed=seed, validation=(X_test, Y_test), verbose=False if (args.quiet or args.json) else None,
                  checkpoint=args.checkpoint, resume=args.resume)
    trained = time.perf_counter()
    result = {
        "model": recipe.name, "network": recipe.model.describe(), "optimizer": repr(net.optimizer),
        "epochs": len(history), "final_loss": net.loss(params, X_train, Y_train),
        "test_loss": net.loss(params, X_test, Y_test),
        "seconds": trained - compiled, "compile_seconds": compiled - began, "generated_module": str(net.path),
        "stopped": history.stopped,
    }
    if is_classification(net, Y_train):
        result["train_accuracy"] = accuracy(net, params, X_train, Y_train)
        result["test_accuracy"] = accuracy(net, params, X_test, Y_test)
    if note:
        result["note"] = note
    if args.checkpoint:
        result["checkpoint"] = args.checkpoint
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{recipe.name}: {result['network']}, {result['optimizer']}, {result['epochs']} epochs "
          f"in {result['seconds']:.2f} s (+{result['compile_seconds']:.2f} s to derive, generate and load)")
    print(f"  loss: train {result['final_loss']:.5g}, test {result['test_loss']:.5g}")
    if "test_accuracy" in result:
        print(f"  accuracy: train {result['train_accuracy']:.4f}, test {result['test_accuracy']:.4f}")
    for key in ("note", "stopped", "checkpoint"):
        if result.get(key):
            print(f"  {key}: {result[key]}")
    print(f"  generated module: {result['generated_module']}")
    return 0


def _shorten(text):
    return text if len(text) <= SIMPLIFIED_WIDTH else text[: SIMPLIFIED_WIDTH - 1] + "…"


def main(argv=None):
    """Entry point of the ``symnet`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except SymnetError as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return _fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
