"""05 · Try it: a blocked port.

Put a firewall in front of the lab's SMTP port (`lab.tap("smtp", block="refuse")`) and send through
it with a 2-second timeout. Predict: does the send fail with a reply code, or without one — and is
anything stored?

Answer: without one. Nothing answered, so there is no SMTP code to read, only a connection error,
and the mailbox holds nothing new. The same message through the REST API (HTTPS, port 443 in
production) is what gets past networks that block outbound SMTP.
"""

from __future__ import annotations

import asyncio
import secrets

import emailkit
from emailkit.message import compose


async def main() -> None:
    lab = emailkit.lab.connect()
    subject = f"through the firewall {secrets.token_hex(3)}"
    ### BEGIN SOLUTION
    firewall = lab.tap("smtp", block="refuse")
    failure: BaseException | None = None
    try:
        await emailkit.smtp.send(compose(sender="app@example.com", to=["ann@example.com"], subject=subject,
                                         text="Blocked?"), host=firewall.host, port=firewall.port, timeout=2)
    except Exception as error:   # what kind of error is the point of the exercise
        failure = error
    code = getattr(failure, "code", None)
    stored = len(lab.mailpit.search(f'subject:"{subject}"').messages)
    ### END SOLUTION
    print(f"send failed: {type(failure).__name__}: {failure}; SMTP code: {code}; stored: {stored}")
    assert failure is not None and not code and stored == 0


if __name__ == "__main__":
    asyncio.run(main())
