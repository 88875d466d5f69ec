"""02 · Try it: reading marks as read.

Send two messages with the same new subject, then open one of them through the REST API
(`lab.mailpit.message(id)`, as the notebook does). Predict: how many of the two are still unread?

Answer: one. Fetching a whole message through Mailpit's API marks it read, as opening it in a mail
program would; listing or searching does not. A REST reader has to keep that in mind (the API's
`unread` filter then no longer finds it).
"""

from __future__ import annotations

import asyncio
import secrets

import emailkit
from emailkit.message import compose


async def main() -> None:
    lab = emailkit.lab.connect()
    subject = f"read me {secrets.token_hex(3)}"
    ### BEGIN SOLUTION
    for text in ("first", "second"):
        await lab.send(compose(sender="bob@example.com", to=["ann@example.com"], subject=subject, text=text))
    both = lab.mailpit.wait_for(f'subject:"{subject}"', timeout=10, count=2)
    lab.mailpit.message(both[0].id)                     # opening one marks it read
    after = lab.mailpit.search(f'subject:"{subject}"').messages
    unread = sum(1 for m in after if not m.read)
    ### END SOLUTION
    print(f"still unread: {unread} of {len(after)}")
    assert len(after) == 2 and unread == 1


if __name__ == "__main__":
    asyncio.run(main())
