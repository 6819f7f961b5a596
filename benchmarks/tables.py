"""Markdown tables, shared by the report and the projection (which the report renders): a leaf
module, so neither has to import the other to draw a table."""

from __future__ import annotations


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub markdown table as lines: header, rule, one line per row."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out
