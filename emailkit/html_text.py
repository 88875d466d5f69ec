"""The plain text Mailpit shows for an HTML-only message (its ``Text`` field and ``/view/{ID}.txt``).

Mailpit's MIME parser (enmime) down-converts such a body with the inbucket ``html2text`` rules, and
the differential suite compares the result with real Mailpit's. The same rules, written for Python:

* ``<h1>``: the heading between two lines of ``*`` as long as it; ``<h2>``: between lines of ``-``;
  ``<h3>``: followed by a line of ``-``;
* ``<b>``/``<strong>``: ``*text*``; ``<li>``: ``* item``; ``<br>``: a line break;
* ``<a href>``: the text, then ``( url )`` unless the text is the URL (``mailto:`` dropped); a link
  around a lone image shows the image's ``alt``;
* ``<p>``, ``<ul>``, ``<table>``: a blank line before and after; ``<div>``: its own line;
* ``<blockquote>``: lines prefixed ``> `` (``>> `` nested), wrapped at 74 characters;
* ``<pre>``: text as written; elsewhere runs of white space are one space;
* ``<head>``, ``<title>``, ``<style>``, ``<script>``: nothing; three or more line breaks become two.

Hand-written: Python's `html.parser` has no tree, and the PyPI ``html2text`` package writes Markdown
(``# Title``), not these rules. The tree is built here with the few HTML5 parsing rules that change
the text (void elements, an open ``<p>`` closed by a block, an open ``<li>`` closed by the next).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["html_to_plain_text", "strip_html"]

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_CLOSES_P = {"address", "article", "aside", "blockquote", "div", "dl", "fieldset", "footer", "form", "h1", "h2",
             "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre", "section", "table", "ul"}
_SKIPPED = {"head", "title", "style", "script"}
_SPACING = re.compile(r"[ \r\n\t]+")
_NEWLINES = re.compile(r"\n\n+")
MAX_LINE = 74


@dataclass
class _Node:
    tag: str  # "" for text
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[_Node] = field(default_factory=list)
    text: str = ""


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#document")
        self.stack = [self.root]

    def _close(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        open_tags = [n.tag for n in self.stack]
        if tag in _CLOSES_P and "p" in open_tags:
            self._close("p")
        if tag == "li" and "li" in open_tags:
            self._close("li")
        node = _Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self._close(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "br":  # </br> is a <br> to an HTML5 parser
            self.stack[-1].children.append(_Node("br"))
        elif tag == "p" and "p" not in [n.tag for n in self.stack]:
            self.stack[-1].children.append(_Node("p"))  # a stray </p> is an empty paragraph
        else:
            self._close(tag)

    def handle_data(self, data: str) -> None:
        parent = self.stack[-1]
        if parent.children and parent.children[-1].tag == "":
            parent.children[-1].text += data
        else:
            parent.children.append(_Node("", text=data))


class _Writer:
    def __init__(self, *, ends_with_space: bool = False) -> None:
        self.out: list[str] = []
        self.prefix = ""
        self.ends_with_space = ends_with_space
        self.just_closed_div = False
        self.quote_level = 0
        self.line_length = 0
        self.pre = False

    def text(self) -> str:
        return "".join(self.out)

    def emit(self, data: str) -> None:
        if not data:
            return
        for line in self._break(data):
            if not line[0].isspace() and not self.ends_with_space and not data.startswith("."):
                self.out.append(" ")
                self.line_length += 1
            self.ends_with_space = line[-1].isspace()
            for char in line:
                self.out.append(char)
                self.line_length += 1
                if char == "\n":
                    self.line_length = 0
                    if self.prefix:
                        self.out.append(self.prefix)

    def _break(self, data: str) -> list[str]:
        if self.quote_level == 0:
            return [data]
        lines: list[str] = []
        existing = self.line_length
        if existing >= MAX_LINE:
            lines.append("\n")
            existing = 0
        while len(data) + existing > MAX_LINE:
            i = MAX_LINE - existing
            while i >= 0 and not data[i].isspace():
                i -= 1
            if i == -1:
                i = MAX_LINE - existing
                while i < len(data) and not data[i].isspace():
                    i += 1
            lines.append(data[:i] + "\n")
            while i < len(data) and data[i].isspace():
                i += 1
            data = data[i:]
            existing = 0
        if data:
            lines.append(data)
        return lines

    def children(self, node: _Node) -> None:
        for child in node.children:
            self.node(child)

    def node(self, node: _Node) -> None:
        if node.tag == "":
            self.emit(node.text if self.pre else _SPACING.sub(" ", node.text).strip())
        elif node.tag == "#document":
            self.children(node)
        else:
            self.element(node)

    def element(self, node: _Node) -> None:  # noqa: C901 - one branch per element, as the rules read
        self.just_closed_div = False
        tag = node.tag
        if tag == "br":
            self.emit("\n")
        elif tag in ("h1", "h2", "h3"):
            sub = _Writer()
            sub.children(node)
            text = sub.text()
            width = max([len(line) - 1 for line in text.split("\n")] + [0])
            divider = ("*" if tag == "h1" else "-") * width
            if tag == "h3":
                self.emit(f"\n\n{text}\n{divider}\n\n")
            else:
                self.emit(f"\n\n{divider}\n{text}\n{divider}\n\n")
        elif tag == "blockquote":
            self.quote_level += 1
            self.prefix = ">" * self.quote_level + " "
            self.emit("\n")
            if self.quote_level == 1:
                self.emit("\n")
            self.children(node)
            self.quote_level -= 1
            self.prefix = ">" * self.quote_level + (" " if self.quote_level > 0 else "")
            self.emit("\n\n")
        elif tag == "div":
            if self.line_length > 0:
                self.emit("\n")
            self.children(node)
            if not self.just_closed_div:
                self.emit("\n")
            self.just_closed_div = True
        elif tag == "li":
            self.emit("* ")
            self.children(node)
            self.emit("\n")
        elif tag in ("b", "strong"):
            sub = _Writer(ends_with_space=True)
            sub.children(node)
            self.emit(f"*{sub.text()}*")
        elif tag == "a":
            self.link(node)
        elif tag in ("p", "ul", "table"):
            self.emit("\n\n")
            self.children(node)
            self.emit("\n\n")
        elif tag == "pre":
            self.pre = True
            self.children(node)
            self.pre = False
        elif tag in _SKIPPED:
            return
        else:
            self.children(node)

    def link(self, node: _Node) -> None:
        kids = node.children
        link_text = kids[0].text if len(kids) == 1 and kids[0].tag == "" else ""
        if len(kids) == 1 and kids[0].tag == "img":
            self.emit(kids[0].attrs.get("alt", ""))
        else:
            self.children(node)
        href = node.attrs.get("href", "").strip()
        href = href[len("mailto:"):] if href.startswith("mailto:") else href
        if href and href != link_text:
            self.emit(f"( {href} )")


def _tree(html: str) -> _Node:
    builder = _TreeBuilder()
    builder.feed(html.replace("\r\n", "\n").replace("\r", "\n"))  # HTML's input stream: CR LF is LF
    builder.close()
    return builder.root


# Mailpit's own HTML stripper (internal/html2text.Strip) for snippets and search text: text nodes
# joined, a space after block ends and <br>/<img>, some elements skipped. Its skip test compares every
# child's Data with the names below, text nodes included, so a text node that is exactly "link" or
# "title" vanishes too; that is reproduced (the snippet of <a>link</a> is empty in Mailpit as well).
_STRIP_SKIP = {"script", "title", "head", "link", "meta", "style", "noscript"}
_BLOCK_END = re.compile(r"</(div|p|td|th|h[1-6]|ul|ol|li|address|article|aside|blockquote|dl|dt|footer|header|hr|"
                        r"main|nav|pre|table|thead|tfoot|video)><", re.I | re.M)
_BR = re.compile(r"<(br /|br)>", re.I | re.M)
_IMG = re.compile(r"<(img)", re.I | re.M)
_WHITESPACE = re.compile(r"\s+")


def strip_html(html: str, *, include_links: bool = False) -> str:
    """Mailpit's `html2text.Strip`: the text of `html` on one line (links' http URLs too if asked)."""
    html = _IMG.sub(r" <\1", _BR.sub(" ", _BLOCK_END.sub(r"</\1> <", html)))
    out: list[str] = []

    def extract(node: _Node) -> None:
        if node.tag == "" and node.text:
            out.append(node.text)
        for child in node.children:
            if (child.tag or child.text) in _STRIP_SKIP:
                continue
            extract(child)
            if include_links and child.tag == "a":
                href = child.attrs.get("href", "")
                if href.lower().startswith("http"):
                    out.append(f" {href} ")

    extract(_tree(html))
    text = "".join(c if c.isprintable() else " " for c in "".join(out).replace("\ufeff", " "))
    return _WHITESPACE.sub(" ", text).strip()


def html_to_plain_text(html: str) -> str:
    """The ``Text`` Mailpit derives from an HTML-only body (see the module docstring)."""
    html = html.lstrip("\ufeff")
    writer = _Writer()
    writer.node(_tree(html))
    return _NEWLINES.sub("\n\n", writer.text().replace("\n ", "\n")).strip()
