"""04 · Try it: revoke a token and watch both paths refuse it.

Get a fresh token for a mailbox (the whole consent flow in one call: `oauth_client.authorize`), send
with it over REST and over SMTP XOAUTH2, then revoke its refresh token. Predict what each path
answers next with the same access token, which has not expired yet.

Answer: both refuse it at once: REST with HTTP 401, SMTP with a 535 to AUTH XOAUTH2. Revocation ends
the grant's tokens, whatever protocol carries them, without waiting for them to expire.
"""

from __future__ import annotations

import asyncio

from nylas import Client
from nylas.models.errors import NylasApiError

import emailkit
from emailkit import oauth_client
from emailkit.message import compose

MAILBOX = "ana@example.com"
REDIRECT_URI = "http://127.0.0.1:8765/callback"


async def main() -> None:
    lab = emailkit.lab.connect()
    provider = lab.provider
    admin = Client(api_key=provider.api_key, api_uri=provider.url)
    client_id = provider.oauth.register_client(redirect_uris=[REDIRECT_URI], name="exercise 04").client_id
    host, port = lab.xoauth2_smtp
    note = compose(sender=MAILBOX, to=["bo@example.org"], subject="With a token", text="No password.")
    ### BEGIN SOLUTION
    app = oauth_client.oauth_app(provider.url, client_id=client_id, redirect_uri=REDIRECT_URI,
                                 scope="email.send email.read")
    token = await oauth_client.authorize(app, provider.url, email=MAILBOX)
    await app.aclose()
    Client(api_key=token["access_token"], api_uri=provider.url).messages.list("me", query_params={"limit": 1})
    await emailkit.smtp.send(note, host=host, port=port, username=MAILBOX, oauth_token=token["access_token"])
    admin.auth.revoke(token["refresh_token"])
    answers = {}
    try:
        Client(api_key=token["access_token"], api_uri=provider.url).messages.list("me", query_params={"limit": 1})
        answers["REST"] = "accepted"
    except NylasApiError as error:
        answers["REST"] = error.status_code
    try:
        await emailkit.smtp.send(note, host=host, port=port, username=MAILBOX, oauth_token=token["access_token"])
        answers["SMTP"] = "accepted"
    except emailkit.SMTPSendError as error:
        answers["SMTP"] = error.code
    ### END SOLUTION
    print(f"after revocation: {answers}")
    assert answers["REST"] == 401 and answers["SMTP"] == 535


if __name__ == "__main__":
    asyncio.run(main())
