"""03 · Try it: mend the careless reply.

Notebook 03's last reply forgot its headers. Write a reply to a new message twice: once with
`threads.reply_headers(parent)` and once with only "Re: " in front of the subject. Group all three with
`threads.group`. Predict which reply sits under the first message (depth 1, the first as its parent).

Answer: the one with In-Reply-To and References. Those headers, not the subject, tie a reply to
its parent.
"""

from __future__ import annotations

import asyncio
import secrets

import emailkit
from emailkit import threads
from emailkit.message import compose

BOB = "Bob <bob@partner.example>"


async def main() -> None:
    lab = emailkit.lab.connect()
    subject = f"Room booking {secrets.token_hex(3)}"
    ### BEGIN SOLUTION
    first = compose(sender=BOB, to=["ann@example.com"], subject=subject, text="Is room 4 free?")
    await lab.send(first)
    parent_id = lab.mailpit.wait_for(f'subject:"{subject}"', timeout=10)[0].id
    headers = threads.reply_headers(lab.mailpit.headers(parent_id))
    mended = compose(sender="ann@example.com", to=[BOB], subject=headers.pop("Subject"), text="It is.",
                     headers=headers)
    await lab.send(mended)
    careless = compose(sender="ann@example.com", to=[BOB], subject=f"Re: {subject}", text="Also room 5.")
    await lab.send(careless)
    found = lab.mailpit.wait_for(f'subject:"{subject}"', timeout=10, count=3)
    grouped = threads.group([{"id": m.id, **lab.mailpit.headers(m.id)} for m in found])
    by_message = grouped.set_index("message_id")
    reply_row = by_message.loc[mended["Message-ID"]]
    first_row = by_message.loc[first["Message-ID"]]
    ### END SOLUTION
    print(grouped[["thread_id", "depth", "subject", "message_id"]].to_string())
    assert reply_row["thread_id"] == first_row["thread_id"] and reply_row["depth"] == 1


if __name__ == "__main__":
    asyncio.run(main())
