"""Address lists given to the API: the ``to``/``from``/``any_email`` filters and a webhook's
notification addresses. Comma lists (a parameter may also repeat), each address checked,
within the sandbox's search limits (`emailkit.limits`), so the provider and the sandbox refuse
the same query at the same size.
"""

from __future__ import annotations

from emailkit.errors import InvalidInput
from emailkit.limits import QUERY_MAX_LENGTH, SEARCH_MAX_TERMS
from emailkit.provider.problems import ProviderError
from emailkit.provider.store import normalise_email

__all__ = ["ANY_EMAIL_MAX", "address_list", "any_email"]

#: Addresses an ``any_email`` filter may hold (Nylas's limit).
ANY_EMAIL_MAX = 25


def address_list(values: list[str] | None, field: str) -> tuple[str, ...]:
    """The addresses in `values` (each a comma list), or a 400 naming `field`."""
    length = sum(len(value) for value in values or [])
    if length > QUERY_MAX_LENGTH:  # emailkit.limits: the same as the sandbox's search
        raise ProviderError(400, "invalid_request_error", f"{field}: {length} characters; at most "
                            f"{QUERY_MAX_LENGTH}: split the query", field=field)
    out: list[str] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if part:
                try:
                    out.append(normalise_email(part, field))
                except InvalidInput as exc:
                    raise ProviderError(400, "invalid_request_error", f"{field}: {exc.problem}; {exc.fix}",
                                        field=field) from None
    if len(out) > SEARCH_MAX_TERMS:
        raise ProviderError(400, "invalid_request_error", f"{field}: {len(out)} addresses; at most "
                            f"{SEARCH_MAX_TERMS} per filter (the sandbox's search-term limit): split the query",
                            field=field)
    return tuple(out)


def any_email(values: list[str] | None) -> tuple[str, ...]:
    """The ``any_email`` filter: an address list of at most `ANY_EMAIL_MAX`."""
    found = address_list(values, "any_email")
    if len(found) > ANY_EMAIL_MAX:
        raise ProviderError(400, "invalid_request_error", f"any_email: {len(found)} addresses; at most "
                            f"{ANY_EMAIL_MAX} per request (Nylas's limit): split the query", field="any_email")
    return found
