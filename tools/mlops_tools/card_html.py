"""A model card as one self-contained HTML page: the registry's Markdown rendered with markdown-it-py (CommonMark
and tables), every figure it references by file name inlined as a base64 `data:` URI."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

__all__ = ["card_html"]

_STYLE = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:.9em}
th{background:#f3f3f3}code{background:#f6f6f6;padding:0 3px}img{max-width:100%}"""


def card_html(markdown: str, figures: Mapping[str, bytes], title: str = "Model card") -> str:
    """The page; `figures` maps a file name the Markdown references (`importance.png`) to its PNG bytes."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(markdown)
    for token in tokens:
        for child in token.children or ():
            if child.type == "image" and (src := str(child.attrGet("src") or "")) in figures:
                child.attrSet("src", "data:image/png;base64," + base64.b64encode(figures[src]).decode())
    body = md.renderer.render(tokens, md.options, {})
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n{body}</body></html>\n")
