"""The one redaction function: secrets out of transcripts, logs and reports.

`Redactor` follows one connection line by line, so it knows that the two lines after
`AUTH LOGIN` are a user name and a password even though they are bare base64. `redact()`
cleans free text (a log line, a report, an HTTP body) with the same rules.

>>> r = Redactor()
>>> r.line("C", "AUTH PLAIN AHVzZXIAc2VjcmV0")
'AUTH PLAIN ********'
>>> redact("Authorization: Bearer abc.def")
'Authorization: Bearer ********'
"""

from __future__ import annotations

import re

__all__ = ["MASK", "SASL_MECHANISMS", "Redactor", "redact"]

MASK = "********"

# Credential-bearing fields, whether they appear as JSON, form or query parameters.
_SECRET_FIELDS = (
    "access_token|refresh_token|id_token|client_secret|code_verifier|password|passwd|"
    "api_key|apikey|secret|token|code|pass"
)
# ...and any key ending in _secret or _token (webhook_secret, id_token), but not page_token,
# which is a cursor, not a credential.
_ANY_SECRET = rf"(?!page_token\b)(?:{_SECRET_FIELDS}|\w+_(?:secret|token))"
# JSON ("key": "value") and Python reprs ('key': 'value'), escaped quotes inside the value included.
_JSON_FIELD = re.compile(rf'("{_ANY_SECRET}"\s*:\s*)"(?:\\.|[^"\\])*"', re.IGNORECASE)
_REPR_FIELD = re.compile(rf"('{_ANY_SECRET}'\s*:\s*)'(?:\\.|[^'\\])*'", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
_KEY_HEADER = re.compile(r"^(X-[\w-]*(?:Key|Token|Secret|Auth)[\w-]*:\s*).*$", re.IGNORECASE | re.MULTILINE)
#: SASL mechanisms whose AUTH exchange carries credentials.
SASL_MECHANISMS = frozenset({"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER", "CRAM-MD5", "DIGEST-MD5",
                             "SCRAM-SHA-1", "SCRAM-SHA-256", "NTLM", "GSSAPI", "EXTERNAL", "ANONYMOUS"})
_SMTP_AUTH = re.compile(rf"^(AUTH\s+(?:{'|'.join(re.escape(m) for m in sorted(SASL_MECHANISMS))}))\s+\S+.*$",
                        re.IGNORECASE | re.MULTILINE)
_FORM_FIELD = re.compile(rf"(?<![\w-])({_ANY_SECRET}=)[^&\s\"']+", re.IGNORECASE)
_AUTH_HEADER = re.compile(
    r"^((?:Proxy-)?Authorization:\s*)(?:(Basic|Bearer|Digest|Token)\s+)?\S.*$",
    re.IGNORECASE | re.MULTILINE,
)
_COOKIE_HEADER = re.compile(r"^((?:Set-)?Cookie:\s*).*$", re.IGNORECASE | re.MULTILINE)
# A Bearer token (RFC 6750's b64token), but not a challenge's auth-params: `WWW-Authenticate: Bearer
# realm="emailkit", error="invalid_token"` carries no secret (a token68 ends in "=" padding only).
_BEARER = re.compile(r"(\bBearer\s+)(?![\w!#$%&'*+.^`|~-]+\s*=\s*[^=\s,])[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_POP3_PASS = re.compile(r"^(PASS|APOP\s+\S+)\s+.*$", re.MULTILINE)  # POP3 clients send these upper-case
_IMAP_LOGIN = re.compile(r"^([\w.-]+ LOGIN \S+)\s+\S.*$", re.IGNORECASE | re.MULTILINE)  # tag LOGIN user password
_IMAP_AUTHENTICATE = re.compile(rf"^([\w.-]+ AUTHENTICATE (?:{'|'.join(re.escape(m) for m in sorted(SASL_MECHANISMS))}))"
                                r"\s+\S+.*$", re.IGNORECASE | re.MULTILINE)  # with an initial response (SASL-IR)
_XOAUTH2_RAW = re.compile(r"(auth=Bearer\s+)[^\x01\s]+", re.IGNORECASE)
_WEBHOOK_SIG = re.compile(r"^((?:X-[\w-]*Signature|X-Webhook-Secret):\s*).*$", re.IGNORECASE | re.MULTILINE)


def _mask_auth_header(match: re.Match[str]) -> str:
    scheme = match.group(2)
    return f"{match.group(1)}{scheme + ' ' if scheme else ''}{MASK}"


def redact(text: str) -> str:
    """Mask every credential `text` may carry (headers, JSON/form fields, SMTP/POP3 AUTH)."""
    text = _AUTH_HEADER.sub(_mask_auth_header, text)
    text = _COOKIE_HEADER.sub(lambda m: m.group(1) + MASK, text)
    text = _WEBHOOK_SIG.sub(lambda m: m.group(1) + MASK, text)
    text = _SMTP_AUTH.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _POP3_PASS.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _IMAP_LOGIN.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _IMAP_AUTHENTICATE.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _JSON_FIELD.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
    text = _REPR_FIELD.sub(lambda m: f"{m.group(1)}'{MASK}'", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _KEY_HEADER.sub(lambda m: m.group(1) + MASK, text)
    text = _FORM_FIELD.sub(lambda m: m.group(1) + MASK, text)
    text = _XOAUTH2_RAW.sub(lambda m: m.group(1) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return text


class Redactor:
    """Redact one connection's lines in order (it remembers multi-line AUTH exchanges).

    It also knows when a message's content is flowing (after DATA's 354, until the lone
    "."), so a body line that happens to start with "Auth" is not taken for a command.
    """

    def __init__(self) -> None:
        self._in_auth = False
        self._in_data = False
        self._data_asked = False

    def line(self, direction: str, text: str) -> str:
        """Return `text` (one protocol line sent in `direction` "C" or "S") with secrets masked."""
        if direction == "S":
            # A final reply ends an AUTH exchange; 334 continues it. Servers send secrets too
            # (a token response, a Location header carrying an authorization code).
            # (IMAP and POP3 continue a SASL exchange with "+ "; POP3's "+OK" ends it.)
            if self._in_auth and not (text.startswith("334") or text == "+" or text.startswith("+ ")):
                self._in_auth = False
            if self._data_asked:
                self._in_data, self._data_asked = text.startswith("354"), False
            return redact(text)
        if self._in_data:
            if text == ".":
                self._in_data = False
            return redact(text)
        if self._in_auth:
            return MASK if text.strip() else text
        words = text.split()
        if words and words[0].upper() == "DATA" and len(words) == 1:
            self._data_asked = True
        if len(words) >= 2 and words[0].upper() == "AUTH" and words[1].upper() in SASL_MECHANISMS:
            # Bare `AUTH LOGIN` / `AUTH PLAIN`: the credentials follow on later lines.
            self._in_auth = True
            if len(words) >= 3:
                return f"{words[0]} {words[1]} {MASK}"
            return text
        if len(words) >= 3 and words[1].upper() == "AUTHENTICATE" and words[2].upper() in SASL_MECHANISMS:
            # IMAP: `tag AUTHENTICATE XOAUTH2`; the credentials follow after the server's "+".
            self._in_auth = True
            return f"{words[0]} {words[1]} {words[2]} {MASK}" if len(words) >= 4 else text
        return redact(text)
