"""The page itself: escaping, number cells, sortable tables, sections, and the one HTML file
with its style and script inline (a Content-Security-Policy forbids loading anything else)."""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dl_utils.report.assets import SCRIPT, STYLE

# nothing is fetched: no network, no other file; images are data: URIs, script and style inline
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def esc(text: Any) -> str:
    """`text` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(text), quote=True)


def number(value: Any) -> float | None:
    """A cell's value as a float (None for text, empty or NaN): what a sortable column sorts by."""
    if isinstance(value, bool):
        return float(value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def sort_key(value: float) -> str:
    """A number as JavaScript's `Number()` reads it back exactly (repr, with infinities spelled `Infinity`)."""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers with `digits` significant digits (integers as integers), '-' for NaN / empty."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        parsed = number(value)
        if parsed is None:
            return "-" if value.strip().lower() == "nan" else value
        value = int(parsed) if value.strip().lstrip("-").isdigit() else parsed
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}g}"
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], *, sortable: bool = True,
          cells: Mapping[str, Any] | None = None, table_id: str | None = None, caption: str = "") -> str:
    """An HTML table of `rows` (mappings from column to value). A sortable table sorts by a
    column when its header is clicked (numbers numerically). `cells[column](row) -> html`
    overrides how a column's cell is drawn (e.g. a link)."""
    cells = cells or {}
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        tds = []
        for column in columns:
            value = row.get(column, "")
            key = number(value)
            sort = f' data-v="{sort_key(key)}"' if key is not None else ""
            shown = cells[column](row) if column in cells else esc(fmt(value))
            tds.append(f"<td{sort}>{shown}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    attrs = (' class="sortable"' if sortable else "") + (f' id="{esc(table_id)}"' if table_id else "")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table{attrs}>{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def definitions(items: Mapping[str, Any]) -> str:
    """A key / value list; nested mappings are drawn as nested lists."""
    out = []
    for key, value in items.items():
        shown = definitions(value) if isinstance(value, Mapping) else esc(value)
        out.append(f"<dt>{esc(key)}</dt><dd>{shown}</dd>")
    return f"<dl>{''.join(out)}</dl>"


def png(data: bytes, alt: str) -> str:
    """A PNG embedded as a data: URI."""
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def section(title: str, body: str, anchor: str, note: str = "") -> str:
    """A titled part of the page (listed in the page's table of contents)."""
    paragraph = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{paragraph}{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[str], contents: Sequence[tuple[str, str]]) -> str:
    """The whole document: `contents` = (anchor, title) of each section, in order."""
    toc = " · ".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in contents)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f'<header><h1>{esc(title)}</h1><p class="note">{subtitle}</p><nav>{toc}</nav></header>'
            f"<main>{''.join(sections)}</main><script>{SCRIPT}</script></body></html>\n")
