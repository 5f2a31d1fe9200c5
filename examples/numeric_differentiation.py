"""Numerical differentiation of f(x) = eˣ at x = 0: the notes' table (forward, backward and central
differences for h = 0.1, 0.01, 0.001), then the error against h over many decades — truncation error falls with
h, round-off error rises — with Richardson extrapolation and the complex step for comparison.

    python examples/numeric_differentiation.py [--out DIR]
"""

from symnet.compare import compare, plot_errors
from symnet.text import format_table
from common import arguments, pyplot


def main(argv=None):
    args = arguments(__doc__, argv)
    table = compare("exp(x)", "x", {"x": 0}, steps=["0.1", "0.01", "0.001"], timings=False)
    rows = [{"method": m, **{f"h={h}": table.numeric[m][h]["x"] for h in table.steps}}
            for m in ("forward", "backward", "central")]
    print("the notes' table (f'(0) = 1):")
    print(format_table(rows, list(rows[0])))
    sweep = compare("exp(x)", "x", {"x": 0}, steps=[f"1e-{k}" for k in range(1, 16)], timings=False)
    errors = sweep.errors["numeric"]
    rows = [{"h": h, **{m: f"{errors[m][h]['x']['relative']:.1e}" for m in errors}} for h in sweep.steps]
    print("\nrelative error against h:")
    print(format_table(rows, list(rows[0])))
    estimate = sweep.optimal_step_estimate
    print(f"\nsmallest error at h = {sweep.best_step['forward']} (forward), {sweep.best_step['central']} (central), "
          f"{sweep.best_step['richardson']} (Richardson); classic estimates √ε = {estimate['one_sided']:.1e}, "
          f"ε^(1/3) = {estimate['central']:.1e}. The complex step has no subtraction, so its error keeps falling.")
    if pyplot():
        print(f"figure: {plot_errors(sweep, f'{args.out}/numeric_differentiation.png')}")
    return sweep


if __name__ == "__main__":
    main()
