"""LaTeX of SymPy expressions as symnet prints them."""

from sympy.printing.latex import LatexPrinter


class _Latex(LatexPrinter):
    """SymPy's LaTeX, with the step written H(x) (symnet's H(0) = 0) instead of θ(x, 0)."""

    def _print_Heaviside(self, expr, exp=None):
        text = rf"H\left({self._print(expr.args[0])}\right)"
        return rf"{text}^{{{exp}}}" if exp else text


def latex(expr):
    """LaTeX of a SymPy expression as symnet prints it."""
    return _Latex().doprint(expr)
