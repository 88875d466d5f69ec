"""00 · Try it: one message, three recipients.

Change the first message so it goes to three people instead of one. Predict before you run it:
how many messages does the mailbox store — one, or three?

Answer: one. An SMTP transaction carries one message with any number of RCPT TO; Mailpit stores it
once, with all three addresses in To.
"""

from __future__ import annotations

import asyncio

import emailkit
from emailkit.message import compose


async def main() -> None:
    lab = emailkit.lab.connect()
    ### BEGIN SOLUTION
    to = ["reader@example.com", "second@example.com", "third@example.com"]
    result = await lab.send(compose(sender="Workbook <workbook@example.com>", to=to,
                                    subject="Hello to three", text="One message, three recipients."))
    found = lab.mailpit.wait_for(f"message-id:{result.message_id.strip('<>')}", timeout=10)
    stored = lab.mailpit.message(found[0].id)
    ### END SOLUTION
    print(f"messages stored: {len(found)}; recipients in To: {[str(a) for a in stored.to]}")
    assert len(found) == 1 and len(stored.to) == 3


if __name__ == "__main__":
    asyncio.run(main())
