"""Plain text: shortening user text, formatting numbers, aligned and Markdown tables."""


def shorten(text, limit):
    """``text`` cut to at most ``limit`` characters, the last one ``…`` when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_number(value):
    """Integers as they are, floats with 17 significant digits (round-trip exact)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_table(rows, columns, headers=None):
    """An aligned plain-text table; numbers right-aligned, text left-aligned."""
    headers = headers or columns
    cells = [[format_number(row[c]) for c in columns] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[c], (int, float)) for row in rows) for c in columns]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def format_markdown_table(rows, columns):
    """A Markdown table (numbers formatted like :func:`format_number`)."""
    body = ["| " + " | ".join(format_number(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *body])
