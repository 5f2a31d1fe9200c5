"""LaTeX of SymPy expressions as symnet prints them, and the display blocks Jupyter renders (``_repr_latex_``)."""

import re

from sympy.printing.latex import LatexPrinter


class _Latex(LatexPrinter):
    """SymPy's LaTeX, with the step written H(x) (symnet's H(0) = 0) instead of θ(x, 0)."""

    def _print_Heaviside(self, expr, exp=None):
        text = rf"H\left({self._print(expr.args[0])}\right)"
        return rf"{text}^{{{exp}}}" if exp else text


def latex(expr, **settings):
    """LaTeX of a SymPy expression as symnet prints it; ``settings`` are SymPy's (``symbol_names``, ``order``)."""
    return _Latex(settings).doprint(expr)


def aligned(rows):
    r"""``\begin{aligned} … \end{aligned}`` of rows ``(left, relation, right)``, aligned at the relation; a row
    given as one string spans the line (a heading in ``\text{…}``)."""
    lines = [row if isinstance(row, str) else f"{row[0]} &{row[1]} {row[2]}" for row in rows]
    return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"


def display(body):
    """``$$body$$``: the text a ``_repr_latex_`` returns for Jupyter (MathJax) to render as a display formula."""
    return f"$${body}$$"


def text(words):
    r"""``words`` as LaTeX text: runs of ordinary characters in ``\text{…}``, each character that text mode treats
    specially (``_ { } $ & # % ^ ~ \``) as its math-mode form between them, which MathJax renders too."""
    special = {"\\": r"\backslash ", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#", "%": r"\%",
               "_": r"\_", "^": r"\hat{}", "~": r"\sim "}
    parts = []
    for run in re.split(r"([\\{}$&#%_^~])", str(words)):
        if run in special:
            parts.append(special[run])
        elif run:
            parts.append(rf"\text{{{run}}}")
    return "".join(parts)
