"""LaTeX of SymPy expressions as symnet prints them, and the display blocks Jupyter renders (``_repr_latex_``)."""

import re

from sympy.printing.latex import LatexPrinter, greek_letters_set


class _Latex(LatexPrinter):
    """SymPy's LaTeX, with the step written H(x) (symnet's H(0) = 0) instead of θ(x, 0), and a name of words of three
    letters or more joined by underscores kept whole (``running_mean2`` as running_mean with subscript 2, not
    running with subscript mean2; ``x_max`` and ``alpha_1`` as SymPy prints them)."""

    def _deal_with_super_sub(self, string, style="plain"):
        words, digits = re.fullmatch(r"(.*?)(\d*)", string).groups()
        parts = words.split("_")
        if len(parts) < 2 or parts[0].lower() in greek_letters_set or not all(
                len(part) >= 3 and part.isascii() and part.isalpha() for part in parts):
            return super()._deal_with_super_sub(string, style=style)
        name = r"\mathrm{" + words.replace("_", r"\_") + "}"
        return f"{name}_{{{digits}}}" if digits else name

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
