"""The sandbox's HTML → text rules; every expected value here was measured on real Mailpit v1.33.1
(tests/differential compares the same on every run)."""

from __future__ import annotations

from emailkit.html_text import html_to_plain_text, strip_html

HTML = ('<h1>Title</h1><h2>Sub</h2><p>A <b>bold</b> <a href="https://x.test/a">link</a> and '
        '<a href="https://x.test/b">https://x.test/b</a></p><ul><li>one<li>two</ul>'
        "<blockquote>quoted</blockquote><pre>  as\r\n  is</pre><script>x()</script>")
OTHER = '<p>Hi</p><p><a href="https://x.test/">go</a> <a href="/rel">link</a></p>a<br>b<br/>c<img src="i">'


def test_text_of_an_html_only_message() -> None:
    assert html_to_plain_text(HTML) == (
        "*****\nTitle\n*****\n\n---\nSub\n---\n\nA *bold* link ( https://x.test/a ) and https://x.test/b\n\n"
        "* one\n* two\n\n> \n> quoted\n\n as\n is")
    assert html_to_plain_text(OTHER) == "Hi\n\ngo ( https://x.test/ ) link ( /rel )\n\na\nb\nc"


def test_strip_for_snippets_and_search() -> None:
    assert strip_html(HTML) == "Title Sub A bold and https://x.test/b onetwo quoted as is"  # "link" vanishes
    assert strip_html(OTHER) == "Hi go a bc"  # <br> is a space, <br/> is not
    assert strip_html(OTHER, include_links=True) == "Hi go https://x.test/ a bc"
