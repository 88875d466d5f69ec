"""01 · Try it: add recipients and count round trips.

Send one message to 3 recipients, then to 4, each on a fresh SMTP connection (`record=True`), and the
same message through Mailpit's REST send API. Predict the round trips of each before you run it.

Answer: SMTP needs N + 5 round trips (greeting, EHLO, MAIL, one RCPT per recipient, DATA, the body,
QUIT): 8, then 9. The REST send stays at 1, whatever the number of recipients.
"""

from __future__ import annotations

import asyncio

import httpx

import emailkit
from emailkit.message import compose


async def main() -> None:
    lab = emailkit.lab.connect()
    ### BEGIN SOLUTION
    http_tap = lab.tap("http")
    counted = {}
    for n in (3, 4):
        to = [f"rt{i}@example.com" for i in range(n)]
        sent = await lab.send(compose(sender="bob@example.org", to=to, subject=f"{n} recipients",
                                      text="Counting round trips."), record=True)
        httpx.post(f"http://{http_tap.host}:{http_tap.port}/api/v1/send", timeout=10,
                   headers={"Connection": "close"},
                   json={"From": {"Email": "bob@example.org"}, "To": [{"Email": a} for a in to],
                         "Subject": f"{n} recipients over REST", "Text": "Counting round trips."})
        counted[n] = (sent.transcript.round_trips, http_tap.wait_closed().round_trips)
    ### END SOLUTION
    for n, (smtp, rest) in counted.items():
        print(f"{n} recipients: SMTP {smtp} round trips (predicted {n + 5}), REST {rest} (predicted 1)")
        assert smtp == n + 5 and rest == 1


if __name__ == "__main__":
    asyncio.run(main())
