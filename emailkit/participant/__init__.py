"""One participant's share of a Mailpit that a whole room uses: their mail only, over SMTP, REST and POP3.

A workshop can point every participant at one shared Mailpit (``MAILPIT_URL``). The notebooks send
from and to fixed addresses (``ann@example.com`` ...), so addresses cannot tell one participant's mail
from another's; a **tag** does. `ParticipantScope` starts, on loopback, for one participant tag:

* **an SMTP front** — a relay to the shared Mailpit's SMTP port that inserts ``X-Tags: <tag>`` as the
  first header line of every message (after the server's ``354``) and changes nothing else: the
  client still hears Mailpit's own greeting, EHLO, reply codes and ``queued as <ID>``. After each
  message it checks (over the REST API) that the stored message carries the tag; one that does not
  (a Mailpit started with ``--tags-disable x-tags``, say) is deleted again and the client hears a
  ``554`` saying why, so no untagged mail stays behind. STARTTLS cannot pass (the front could not
  insert the header into an encrypted session): it is left out of the EHLO keywords and a client's
  ``STARTTLS`` is answered ``454``. The workshop keeps STARTTLS off, as Mailpit does by default.
* **a scoped REST gateway** — Mailpit's REST API (``/api/v1/...``, the same JSON) limited to the
  messages carrying the tag: a list is the search ``tag:<tag>`` with the scope's totals, a search is
  ``tag:<tag> <query>``, one message (its raw source, headers, parts) answers ``404 page not found``
  unless it carries the tag (exactly as for an ID that does not exist), delete and read flags act
  only within the scope, ``/api/v1/send`` adds the tag, ``info`` and ``tags`` count the scope only.
  The scope's own tag is left out of the answers' ``Tags``, so the view is that of a Mailpit of the
  participant's own. What would act on, or show, everybody's mail — Chaos, renaming or deleting a
  tag, the events websocket, the web UI — answers ``403`` with the reason.
* **POP3** — emailkit's POP3 server (`emailkit.sandbox.pop3_server.POP3Server`) over a maildrop read
  through the gateway, with a generated login: the maildrop is the scope's (Mailpit's own POP3 would
  hand out everyone's).

Whatever reads through the gateway is scoped with it: `emailkit.imap` (the lab's IMAP server reads
Mailpit's REST API) and the provider (it reads the mailbox's REST API and delivers over its SMTP).

What this does not isolate: the shared Mailpit itself. Its own web UI, REST API, SMTP and POP3 show
and take everything, to anyone who has its address — and a participant's kernel has it
(``MAILPIT_URL``). The scope keeps a room's views apart; it is not a security boundary. A message
that names a participant's tag itself (``X-Tags``, or a plus-address ``someone+<tag>@...``) lands in
that participant's scope, as mail sent to them would.

    with ParticipantScope("http://127.0.0.1:8025", "127.0.0.1", 1025, "participant-01") as scope:
        scope.smtp_host, scope.smtp_port, scope.api_url, scope.pop3
"""


from __future__ import annotations

from emailkit.participant.gateway import gateway_app
from emailkit.participant.maildrop import ScopedMaildrop
from emailkit.participant.scope import ParticipantScope
from emailkit.participant.scoped_mailpit import ScopedMailpit
from emailkit.participant.smtp_front import SMTPFront
from emailkit.participant.tags import PARTICIPANT_VARIABLE, participant_tag

__all__ = [
    "PARTICIPANT_VARIABLE",
    "ParticipantScope",
    "SMTPFront",
    "ScopedMailpit",
    "ScopedMaildrop",
    "gateway_app",
    "participant_tag",
]
