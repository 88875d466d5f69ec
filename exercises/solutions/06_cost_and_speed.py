"""06 · Try it: a long way to the server.

Send one message on a fresh SMTP connection through a wiretap that adds 40 ms of round-trip time
(`lab.tap("smtp", rtt=0.04)`), and one REST send through a tap with the same delay. Predict each
duration from its round trips before you run it.

Answer: about round trips x 40 ms: SMTP's 6 round trips take at least 240 ms, REST's single
request at least 40 ms. On a real network, the number of turns, not the bytes, is what one
message costs.
"""

from __future__ import annotations

import asyncio

import httpx

import emailkit
from emailkit.message import compose


async def main() -> None:
    lab = emailkit.lab.connect()
    ### BEGIN SOLUTION
    smtp_tap, http_tap = lab.tap("smtp", rtt=0.04), lab.tap("http", rtt=0.04)
    await emailkit.smtp.send(compose(sender="bench@example.com", to=["inbox@example.com"], subject="at 40 ms",
                                     text="How long?"), host=smtp_tap.host, port=smtp_tap.port)
    httpx.post(f"http://{http_tap.host}:{http_tap.port}/api/v1/send", timeout=10, headers={"Connection": "close"},
               json={"From": {"Email": "bench@example.com"}, "To": [{"Email": "inbox@example.com"}],
                     "Subject": "at 40 ms over REST", "Text": "How long?"})
    smtp, rest = await smtp_tap.wait_closed_async(), http_tap.wait_closed()   # each conversation whole
    ### END SOLUTION
    for name, t in (("SMTP", smtp), ("REST", rest)):
        print(f"{name}: {t.round_trips} round trips, {t.duration * 1000:.0f} ms (at least {t.round_trips * 40} ms)")
        assert t.duration >= t.round_trips * 0.04 * 0.95
    assert smtp.round_trips > rest.round_trips and smtp.duration > rest.duration


if __name__ == "__main__":
    asyncio.run(main())
