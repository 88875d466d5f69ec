"""The differential corpus: messages a user sends, built once and sent byte-for-byte to both servers.

Each `Case` has the project's `compose()` message (fixed Date and Message-ID, so the bytes are the
same whatever the clock) and the same message described for Nodemailer (`node`), which composes its
own bytes (its own boundaries: the normaliser masks those).
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from emailkit.message import compose

__all__ = ["BY_NAME", "CASES", "Case", "big_text", "png"]

DATE = "Tue, 01 Dec 2026 09:00:00 +0000"


def png(width: int = 300, height: int = 200, rgb: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    """A real PNG image (stdlib only: zlib + struct), so thumbnails have something to decode."""
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


IMAGE = png()
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
HTML_WITH_LINKS = ('<html><body><p>Hello <b>HTML</b> <a href="http://127.0.0.1:9/nowhere">a link</a></p>'
                   '<img src="cid:logo@corpus"></body></html>')

# Every element the down-conversion to Text treats specially (Mailpit's Text of an HTML-only message)
HTML_ONLY = """<!DOCTYPE html><html><head><title>ignored</title><style>p {color: red}</style></head><body>
<h1>Main   title</h1><h2>Second</h2><h3>Third</h3><h4>Fourth</h4>
<p>A <b>bold</b> and <strong>strong</strong> word, a <a href="http://127.0.0.1:9/x">link</a>,
a bare <a href="http://127.0.0.1:9/y">http://127.0.0.1:9/y</a> and <a href="mailto:me@corpus.test">mail me</a>.</p>
<ul><li>one<li>two</li><li>three <i>italic</i></li></ul><ol><li>first</li><li>second</li></ol>
<div>a div</div><div><div>nested div</div></div>line<br>break<br/>again
<blockquote>A quoted line that is long enough to be wrapped by the rules at seventy-four characters, twice over
 and more.<blockquote>nested quote</blockquote></blockquote>
<pre>  keep   this
    as is</pre>
<table><tr><th>h</th><td>cell</td></tr></table><a href="http://127.0.0.1:9/i"><img src="cid:x" alt="alt text"></a>
<p>caf&eacute; &amp; &lt;tags&gt; &#x1F600;</p><script>var x = 1;</script>
</body></html>"""


@dataclass(frozen=True)
class Case:
    name: str
    kwargs: dict[str, Any]
    node: dict[str, Any] = field(default_factory=dict)

    def message(self) -> EmailMessage:
        return compose(date=DATE, message_id=f"<{self.name}@corpus.test>", **self.kwargs)

    def raw(self) -> bytes:
        msg = self.message()
        return msg.as_bytes(policy=msg.policy)

    @property
    def sender(self) -> str:
        s = self.kwargs["sender"]
        return s[1] if isinstance(s, tuple) else s

    @property
    def recipients(self) -> list[str]:
        out = []
        for key in ("to", "cc", "bcc"):
            value = self.kwargs.get(key) or []
            for item in value if isinstance(value, list) else [value]:
                out.append(item[1] if isinstance(item, tuple) else item)
        return out

    def nodemailer(self) -> dict[str, Any]:
        """The same message for Nodemailer (addresses, subject, bodies, headers, attachments)."""
        def addr(item: Any) -> Any:
            return {"name": item[0], "address": item[1]} if isinstance(item, tuple) else item

        def addrs(key: str) -> Any:
            value = self.kwargs.get(key)
            if not value:
                return None
            return [addr(v) for v in value] if isinstance(value, list) else addr(value)

        out: dict[str, Any] = {"from": addr(self.kwargs["sender"]), "subject": self.kwargs["subject"],
                               "messageId": f"<{self.name}.node@corpus.test>", "date": DATE}
        for ours, theirs in (("to", "to"), ("cc", "cc"), ("bcc", "bcc"), ("reply_to", "replyTo")):
            if addrs(ours):
                out[theirs] = addrs(ours)
        for key in ("text", "html"):
            if self.kwargs.get(key) is not None:
                out[key] = self.kwargs[key]
        if self.kwargs.get("headers"):
            out["headers"] = dict(self.kwargs["headers"])
        atts = []
        for item in self.kwargs.get("attachments", ()):
            entry = {"filename": item[0], "contentType": item[1], "content": base64.b64encode(item[2]).decode()}
            if len(item) > 3:
                entry["cid"] = item[3]
            atts.append(entry)
        if atts:
            out["attachments"] = atts
        out.update(self.node)
        return out


CASES = [
    Case("plain", dict(sender=("Alice", "alice@corpus.test"), to=["bob@corpus.test"], subject="Plain hello",
                       text="Hello Bob,\nthis is plain text.\n")),
    Case("html-text", dict(sender="alice@corpus.test", to=[("Bob B", "bob@corpus.test")], subject="HTML and text",
                           text="Hello in text http://127.0.0.1:9/text-link\n", html=HTML_WITH_LINKS.replace(
                               '<img src="cid:logo@corpus">', ""))),
    Case("attachments", dict(sender="alice@corpus.test", to=["bob@corpus.test"], subject="Files attached",
                             text="See attached.\n", html=HTML_WITH_LINKS,
                             attachments=[("report.pdf", "application/pdf", PDF),
                                          ("logo.png", "image/png", IMAGE, "logo@corpus"),
                                          ("photo.png", "image/png", IMAGE),
                                          ("page.html", "text/html", b"<p>attached page</p>"),
                                          ("r\u00e9sum\u00e9 final.txt", "text/plain", b"plain file\n")])),
    Case("utf8", dict(sender=("Zo\u00eb \u00c6sir", "zoe@corpus.test"), to=[("J\u00fcrgen \u6771\u4eac", "jurgen@corpus.test")],
                      subject="Gr\u00fc\u00dfe \u2014 \u65e5\u672c\u8a9e \U0001F600",
                      text="Na\u00efve caf\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001F600\n",
                      html="<p>Na\u00efve caf\u00e9 \u2014 \u65e5\u672c\u8a9e</p>")),
    Case("cc-bcc-reply", dict(sender="alice@corpus.test", to=["bob@corpus.test", ("Carol", "carol@corpus.test")],
                              cc=[("Dave", "dave@corpus.test")], bcc=["erin@corpus.test"],
                              reply_to=[("Replies", "replies@corpus.test")], subject="Many recipients",
                              text="To, Cc, Bcc and Reply-To.\n")),
    Case("list-unsubscribe", dict(sender="news@corpus.test", to=["bob@corpus.test"], subject="Newsletter",
                                  text="Unsubscribe below.\n",
                                  headers={"List-Unsubscribe": "<mailto:unsub@corpus.test?subject=stop>, "
                                                               "<https://corpus.test/unsub/123>",
                                           "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})),
    Case("html-only", dict(sender="alice@corpus.test", to=["bob@corpus.test"], subject="Only HTML",
                           html=HTML_ONLY)),
    Case("tags", dict(sender="alice@corpus.test", to=["bob+Invoices@corpus.test", "carol+urgent@corpus.test"],
                      subject="Tagged", text="Tagged by header and plus-address.\n",
                      headers={"X-Tags": "beta, Alpha, alpha, gamma two"})),
]

#: By name, for tests that want one.
BY_NAME = {c.name: c for c in CASES}


def big_text(size: int) -> str:
    """A text body of about `size` bytes (for the size limit)."""
    line = "0123456789" * 7 + "\n"
    return line * (size // len(line) + 1)


