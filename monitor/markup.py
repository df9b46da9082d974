"""Escaping for the markup of a channel's own template (`body_format`).

A user may write a channel's `body` in HTML or Markdown. Every value put into it that the
user did not write into that template (provider text, errors, labels, figures) is escaped
for that markup first, so a provider's error page or a `command` adapter's output cannot
add a link or hide text. Pure functions, no I/O.
"""

from __future__ import annotations

import html
import re
from typing import Literal

BodyFormat = Literal["text", "html", "markdown"]
BODY_FORMATS: tuple[BodyFormat, ...] = ("text", "html", "markdown")

_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
"""Every ASCII punctuation character: CommonMark lets each be escaped with a backslash, and
escaping all of them (not a chosen few) also covers `<` (inline HTML), `&` (entities), `|`
(tables) and `~` (strike-through) of the extensions renderers add."""


def escape(text: str, body_format: BodyFormat) -> str:
    """`text` made inert in `body_format`: it reads as itself, never as markup."""
    if body_format == "html":
        return html.escape(text, quote=True)
    if body_format == "markdown":
        return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return text
