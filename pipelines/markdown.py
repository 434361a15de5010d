"""Markdown tables for the reports that pipelines write (results.md, eval.md, report.md).

Example:

    >>> print("\\n".join(table(["β", "rate"], [[0.1, "3.20"]])))
    | β | rate |
    |---|---:|
    | 0.1 | 3.20 |
"""


def table(header, rows, align=None):
    """The lines of a Markdown table: `header`, then `rows` (cells formatted
    with `str`). `align`: one of "l" or "r" per column; default the first
    column left (labels), the others right (numbers)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    return ["| " + " | ".join(map(str, header)) + " |", rule,
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]
