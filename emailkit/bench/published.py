"""Published figures from elsewhere, to set beside the lab's own — none of them is measured here.

Each row says what was published, by whom, over which period and when it was read for this workbook.
Tables that show them carry the column ``measured_here = False``; the decision report never quotes them
as evidence of this lab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PUBLISHED", "published"]

#: (what, figure, source, as of) — hosted send APIs and their published limits.
PUBLISHED: list[tuple[str, str, str, str]] = [
    ("SendGrid send API, median time to HTTP 200", "22 ms (p99 157 ms)",
     "Knock's public email-API latency dashboard, 90 days of its production traffic (second-hand)", "2026-11"),
    ("Postmark send API, median time to HTTP 200", "32-33 ms",
     "Knock's public email-API latency dashboard, 90 days of its production traffic (second-hand)", "2026-11"),
    ("Resend send API, median time to HTTP 200", "78-79 ms",
     "Knock's public email-API latency dashboard, 90 days of its production traffic (second-hand)", "2026-11"),
    ("Amazon SES send API, median time to HTTP 200", "127-144 ms",
     "Knock's public email-API latency dashboard, 90 days of its production traffic (second-hand)", "2026-11"),
    ("Postmark batch ceiling", "500 messages and 50 MB per call", "Postmark API documentation", "2026-11"),
    ("SendGrid batch ceiling", "1,000 personalizations per request", "SendGrid v3 Mail Send documentation",
     "2026-11"),
    ("Resend batch ceiling", "100 emails per batch; default 2 requests/s per team", "Resend API documentation",
     "2026-11"),
    ("Amazon SES recipients per message", "50", "Amazon SES quotas documentation", "2026-11"),
]


def published() -> pd.DataFrame:
    """`PUBLISHED` as a table, each row marked as not measured here."""
    import pandas as pd

    frame = pd.DataFrame(PUBLISHED, columns=["what", "published figure", "source", "as of"])
    frame["measured_here"] = False
    return frame
