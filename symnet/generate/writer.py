"""The code writer: lines of generated Python at the right indentation, with blocks, nested loops and compiled
functions under the :data:`JIT` decorator.  It knows no SymPy; what goes in the lines is the caller's."""

from contextlib import contextmanager

from symnet.generate import modules

INDENT = "    "
JIT = '@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})'
"""Every generated function's decorator. NumPy's error model (x/0 gives inf or nan) lets LLVM vectorise loops that
divide; ``contract`` allows FMA and no other fast-math licence (measurements: docs/performance.md)."""


class _Writer:
    """Collects indented lines."""

    def __init__(self):
        self.lines = []
        self.depth = 0
        self.prange = False   # whether the function being written has a numba.prange loop

    def __call__(self, text=""):
        """Add one line; user text in it (names, formulas) cannot start another: line breaks are escaped."""
        if not text.isprintable():
            text = "".join(character if character.isprintable() else modules.literal_text(character)
                           for character in text)
        self.lines.append(INDENT * self.depth + text if text else "")

    @contextmanager
    def block(self):
        """The lines written inside are indented one level more."""
        self.depth += 1
        yield
        self.depth -= 1

    @contextmanager
    def loops(self, *ranges, parallel=False):
        """Nested ``for index in range(extent):`` lines for each ``(index, extent)``; the body goes inside.
        With ``parallel`` the outer loop is ``numba.prange``: its iterations must not depend on each other."""
        self.prange |= bool(parallel and ranges)
        for number, (index, extent) in enumerate(ranges):
            self(f"for {index} in {'numba.prange' if parallel and number == 0 else 'range'}({extent}):")
            self.depth += 1
        yield
        self.depth -= len(ranges)

    def insert(self, at, text):
        """Add one line at position ``at`` (a ``len(lines)`` taken earlier at the current depth)."""
        self.lines.insert(at, INDENT * self.depth + text)

    @contextmanager
    def function(self, name, arguments):
        """A compiled function: the JIT line, ``def``, and the body inside; ``parallel=True`` is added to the JIT
        line when the body has a ``numba.prange`` loop."""
        self("")
        self("")
        decorator = len(self.lines)
        self.prange = False
        self(JIT)
        self(f"def {name}({', '.join(arguments)}):")
        with self.block():
            yield
        if self.prange:
            self.lines[decorator] = JIT[:-1] + ", parallel=True)"
