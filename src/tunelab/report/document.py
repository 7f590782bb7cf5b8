"""A report as a list of plain blocks, rendered twice: to one self-contained HTML page and to
Markdown. Both renderers see the same blocks, so the two files say the same thing.

Every string in a block is plain text; the renderers escape it (``html.escape`` for HTML,
backslash escapes for Markdown), so run names, errors and model paths can never inject markup.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field

from tunelab.report.plots import Plot


@dataclass
class Heading:
    """A section title (level 1 for the page title)."""

    text: str
    level: int = 2


@dataclass
class Paragraph:
    """Running text, optionally with a bold lead-in."""

    text: str
    lead: str = ""  # shown in bold before the text
    css: str = ""  # an HTML class ("note", "verdict", ...); Markdown ignores it


@dataclass
class BulletList:
    """A bulleted list of plain-text items."""

    items: list[str]


@dataclass
class Table:
    """A table of plain-text cells."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    row_classes: list[str] = field(default_factory=list)  # per row: "", "chosen", "failed"
    row_headers: bool = False  # the first cell of each row is a header (the axes table)
    # Per row: True when the row is shorter than the headers and its last cell spans the rest
    # (HTML colspan; Markdown pads with empty cells). A failed strategy's error, for instance.
    spans: list[bool] = field(default_factory=list)


@dataclass
class Callout:
    """A framed box: the recommendation."""

    title: str
    items: list[str]
    good: bool = True


@dataclass
class Preformatted:
    """Text shown verbatim (error messages)."""

    text: str


Block = Heading | Paragraph | BulletList | Table | Callout | Preformatted | Plot


# --------------------------------------------------------------------------------------------------
# HTML

_CSS = """
:root { --fg:#1d2430; --muted:#5b6473; --line:#d9dee6; --accent:#1f5fbf; --good:#e9f6ec; --goodline:#3b9a57;
        --bad:#fdecec; --badline:#c94a4a; --head:#f3f5f8; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; }
p { margin: 6px 0 10px; }
p.note, figcaption, caption { color: var(--muted); font-size: 13px; }
p.verdict { font-size: 16px; }
.callout { border: 1px solid var(--goodline); border-left-width: 6px; background: var(--good);
           padding: 12px 18px; border-radius: 6px; margin: 16px 0; }
.callout.bad { border-color: var(--badline); background: var(--bad); }
.callout h2 { border: 0; margin: 0 0 6px; padding: 0; }
ul { margin: 6px 0 10px; padding-left: 22px; }
li { margin: 3px 0; }
.table-wrap { overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 13.5px; min-width: 50%; }
caption { caption-side: bottom; text-align: left; padding-top: 6px; }
th, td { border: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
thead th { background: var(--head); white-space: nowrap; }
tbody th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.chosen td, tr.chosen th { background: var(--good); font-weight: 600; }
tr.failed td { background: var(--bad); }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 18px; margin: 10px 0; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; }
figure img { display: block; width: 100%; height: auto; }
pre { background: var(--head); border: 1px solid var(--line); padding: 8px 10px; border-radius: 4px;
      white-space: pre-wrap; word-break: break-word; font-size: 12.5px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""

# No script, no network: the page may only use inline styles and data: images.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_NUMERIC = re.compile(r"^[–\-+]?[\d,.]+(\s?(%|s|MiB|×))?(\s±\s[\d.,]+)?$|^–$")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell_class(text: str) -> str:
    return ' class="num"' if _NUMERIC.match(text.strip()) else ""


def _html_table(table: Table) -> str:
    out = ['<div class="table-wrap"><table>']
    if table.caption:
        out.append(f"<caption>{_e(table.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for h in table.headers) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(table.rows):
        css = table.row_classes[i] if i < len(table.row_classes) else ""
        cells = []
        first, rest = (row[0], row[1:]) if table.row_headers else (None, row)
        if first is not None:
            cells.append(f'<th scope="row">{_e(first)}</th>')
        spans = i < len(table.spans) and table.spans[i] and len(row) < len(table.headers)
        if spans:
            cells.extend(f"<td>{_e(c)}</td>" for c in rest[:-1])
            cells.append(f'<td colspan="{len(table.headers) - len(row) + 1}">{_e(rest[-1])}</td>')
        else:
            cells.extend(f"<td{_cell_class(c) if not table.row_headers else ''}>{_e(c)}</td>" for c in rest)
        out.append(f"<tr{f' class={chr(34)}{css}{chr(34)}' if css else ''}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_e(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        lead = f"<strong>{_e(block.lead)}</strong> " if block.lead else ""
        css = f' class="{_e(block.css)}"' if block.css else ""
        return f"<p{css}>{lead}{_e(block.text)}</p>"
    if isinstance(block, BulletList):
        return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Callout):
        items = "".join(f"<li>{_e(item)}</li>" for item in block.items)
        return f'<section class="callout{"" if block.good else " bad"}"><h2>{_e(block.title)}</h2><ul>{items}</ul></section>'
    if isinstance(block, Preformatted):
        return f"<pre>{_e(block.text)}</pre>"
    if isinstance(block, Plot):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure id="{_e(block.name)}"><img src="data:image/png;base64,{data}" alt="{_e(block.title)}">'
            f"<figcaption>{_e(block.caption)}</figcaption></figure>"
        )
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(blocks: list[Block], *, title: str, footer: str = "") -> str:
    """One self-contained HTML page: inline CSS, plots as base64 PNG, no script, nothing external."""
    body: list[str] = []
    in_grid = False
    for block in blocks:
        if isinstance(block, Plot) and not in_grid:
            body.append('<div class="plots">')
            in_grid = True
        elif not isinstance(block, Plot) and in_grid:
            body.append("</div>")
            in_grid = False
        body.append(_html_block(block))
    if in_grid:
        body.append("</div>")
    foot = f"<footer>{_e(footer)}</footer>" if footer else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n" + "\n".join(body) + f"\n{foot}\n</main>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------------
# Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")


def md_escape(text: object) -> str:
    """Backslash-escape the characters Markdown would read as markup; newlines become spaces."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _md_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(md_escape(h) for h in table.headers) + " |",
        "|" + "|".join("---" for _ in table.headers) + "|",
    ]
    for i, row in enumerate(table.rows):
        css = table.row_classes[i] if i < len(table.row_classes) else ""
        cells = [md_escape(c) for c in row]
        cells += [""] * (len(table.headers) - len(cells))
        if css == "chosen" and cells:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    if table.caption:
        lines.append("")
        lines.append(f"*{md_escape(table.caption)}*")
    return "\n".join(lines)


def _md_block(block: Block, plot_dir: str) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + md_escape(block.text)
    if isinstance(block, Paragraph):
        lead = f"**{md_escape(block.lead)}** " if block.lead else ""
        return lead + md_escape(block.text)
    if isinstance(block, BulletList):
        return "\n".join(f"- {md_escape(item)}" for item in block.items)
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Callout):
        return f"> **{md_escape(block.title)}**\n>\n" + "\n".join(f"> - {md_escape(i)}" for i in block.items)
    if isinstance(block, Preformatted):
        fence = "```"
        while fence in block.text:
            fence += "`"
        return f"{fence}text\n{block.text}\n{fence}"
    if isinstance(block, Plot):
        return f"![{md_escape(block.title)}]({plot_dir}/{block.name}.png)\n\n*{md_escape(block.caption)}*"
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(blocks: list[Block], *, plot_dir: str = "plots", footer: str = "") -> str:
    """The same blocks as Markdown; plots are referenced as ``<plot_dir>/<name>.png``."""
    parts = [_md_block(block, plot_dir) for block in blocks]
    if footer:
        parts.append(f"---\n\n*{md_escape(footer)}*")
    return "\n\n".join(parts) + "\n"
