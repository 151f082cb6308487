"""The page skeleton of the HTML report: inline CSS, navigation, sections. No external resource."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import pandas as pd

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --accent: #2f5d9a; --warn: #8a5a00; }
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: #fff; line-height: 1.45; }
header { padding: 1.2rem 2rem 0.6rem; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 0.3rem; font-size: 1.6rem; }
header p { margin: 0.1rem 0; color: var(--muted); font-size: 0.9rem; }
nav { padding: 0.5rem 2rem; border-bottom: 1px solid var(--line); position: sticky; top: 0;
      background: #f7f8fa; z-index: 10; font-size: 0.9rem; }
nav a { margin-right: 1rem; color: var(--accent); text-decoration: none; white-space: nowrap; }
nav a.missing { color: var(--muted); }
main { padding: 0 2rem 3rem; }
section { border-bottom: 1px solid var(--line); padding: 1rem 0 1.5rem; }
section h2 { font-size: 1.3rem; margin: 0.6rem 0; }
section h3 { font-size: 1.05rem; margin: 1.1rem 0 0.4rem; }
p.lead { color: var(--muted); max-width: 70rem; margin: 0.2rem 0 0.6rem; }
p.note { color: var(--warn); background: #fff6e0; border-left: 3px solid #e0a800;
         padding: 0.35rem 0.7rem; max-width: 70rem; }
.figs { display: flex; flex-wrap: wrap; gap: 0.8rem; align-items: flex-start; }
.fig { border: 1px solid var(--line); border-radius: 4px; padding: 2px; }
.scroll { overflow-x: auto; max-width: 100%; }
table.data { border-collapse: collapse; font-size: 0.82rem; margin: 0.3rem 0 0.8rem; }
table.data th, table.data td { border: 1px solid var(--line); padding: 0.2rem 0.5rem; text-align: right; }
table.data th { background: #f0f2f6; }
table.data td:first-child, table.data th:first-child { text-align: left; }
img.static { max-width: 100%; border: 1px solid var(--line); }
pre { background: #f7f8fa; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
code { font-size: 0.9em; }
"""


@dataclass
class Section:
    """One section of the report.

    Attributes
    ----------
    key : str
        Anchor id (``#key``) of the section.
    title : str
    parts : list of str
        HTML fragments, in order.
    missing : bool
        Whether the section's inputs were absent (shown greyed out in the navigation).
    """

    key: str
    title: str
    parts: list[str] = field(default_factory=list)
    missing: bool = False

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def note(self, text: str) -> None:
        """A visible note (missing inputs, skipped analyses)."""
        self.parts.append(f'<p class="note">{escape(text)}</p>')

    def lead(self, text: str) -> None:
        """A short explanation of what the section shows."""
        self.parts.append(f'<p class="lead">{text}</p>')

    def heading(self, text: str) -> None:
        self.parts.append(f"<h3>{escape(text)}</h3>")

    def html(self) -> str:
        body = "\n".join(self.parts)
        return f'<section id="{self.key}">\n<h2>{escape(self.title)}</h2>\n{body}\n</section>'


def page(title: str, subtitle: Sequence[str], sections: Sequence[Section], head: str = "") -> str:
    """The whole document: head with inline CSS (and ``head``), navigation, every section."""
    nav = " ".join(
        f'<a href="#{s.key}"{" class=missing" if s.missing else ""}>{escape(s.title)}</a>'
        for s in sections
    )
    header = "".join(f"<p>{line}</p>" for line in subtitle)
    body = "\n".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n{head}</head>\n<body>\n"
        f"<header><h1>{escape(title)}</h1>{header}</header>\n<nav>{nav}</nav>\n"
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def figure_block(fragments: Sequence[str]) -> str:
    """Figures side by side, wrapping to the next line when the page is narrow."""
    inner = "".join(f'<div class="fig">{f}</div>' for f in fragments)
    return f'<div class="figs">{inner}</div>'


def table(df: pd.DataFrame, index: bool = False, max_rows: int = 200) -> str:
    """A DataFrame as an HTML table (escaped, 4 significant digits), cut at ``max_rows``."""
    note = ""
    if len(df) > max_rows:
        note = f'<p class="lead">First {max_rows} of {len(df)} rows.</p>'
        df = df.head(max_rows)
    html = df.to_html(
        index=index,
        border=0,
        classes="data",
        na_rep="–",
        float_format=lambda v: f"{v:.4g}",
        escape=True,
    )
    return f'<div class="scroll">{html}</div>{note}'


def details(summary: str, inner: str) -> str:
    """A folded block (``<details>``) titled ``summary``."""
    return f"<details><summary>{escape(summary)}</summary>{inner}</details>"
