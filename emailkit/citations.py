"""Which measured figures a decision report quotes, for which driver, and in what words.

A report used to attach every figure recorded for a claim to every place that claim was named, so a
figure showed up three times, loopback and 40 ms medians stood side by side with no word on which
applies, and a timeout the notebook set was quoted as the cost of a blocked port. Here instead:

* each decision driver gets at most two figures, the ones that bear on it: its claims' figures in
  `RELEVANCE` order (a ratio measured with TLS at a realistic round-trip time before a loopback one);
* no figure is quoted twice: a figure given to an earlier driver is not given again;
* a figure that only repeats a setting (`KnownKey.setting`) is never quoted as a measurement;
* each figure is one interpreted sentence ("At a simulated 40 ms round-trip time, one message over SMTP
  with STARTTLS + AUTH on a new connection took 3.1× as long as one HTTPS request on a new connection")
  with its interval and its conditions — network, mailbox server, TLS, samples, machine and date —
  and never a local file path;
* `CAVEAT` says once what lab figures are and are not.

>>> chosen = cite([("volume", ("C08", "C19"))], evidence.load())      # doctest: +SKIP
>>> [c.text for c in chosen["volume"]]                                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from . import evidence as store
from .display import quantity

__all__ = ["CAVEAT", "PER_DRIVER", "RELEVANCE", "Citation", "cite", "cited", "describe"]

#: What every report says once about the figures it quotes.
CAVEAT = ("The figures quoted come from the workbook's own lab: local servers on one machine, talking over "
          "loopback or through a proxy that simulates a round-trip time. They show how the protocols differ "
          "under the stated conditions; they are not a production benchmark of any provider.")

#: The most figures one driver gets.
PER_DRIVER = 2

#: For each claim, its figures in order of relevance: the first is the one a driver on it gets first.
#: Claims not listed use `KNOWN_KEYS` order.
RELEVANCE: dict[str, tuple[str, ...]] = {
    "C07": ("c07.round_trips_smtp_starttls_vs_https", "smtp.round_trips_per_message", "rest.round_trips_per_message",
            "smtp.bytes_per_message", "rest.bytes_per_message"),
    "C08": ("c08.throughput_smtp_reused_vs_https_at_40ms", "c08.throughput_batch_vs_single_at_40ms"),
    "C09": ("c09.time_smtp_starttls_vs_https_at_40ms", "c09.time_smtp_starttls_vs_https_loopback"),
    "C19": ("c19.throughput_smtp_pool_vs_one_at_40ms", "c19.throughput_h2_streams_vs_one_at_40ms"),
}


@dataclass(frozen=True)
class Citation:
    """One figure as a report quotes it: the sentence, its conditions, where and when it was measured."""

    key: str
    claim: str
    sentence: str
    conditions: str
    measured: str

    @property
    def text(self) -> str:
        parts = "; ".join(p for p in (self.conditions, self.measured) if p)
        return f"{self.sentence} ({parts})." if parts else f"{self.sentence}."


def _order(claim: str) -> list[str]:
    listed = list(RELEVANCE.get(claim, ()))
    return listed + [k for k, known in store.KNOWN_KEYS.items() if known.claim == claim and k not in listed]


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _times(value: float) -> str:
    return f"{value:.1f}×" if value >= 1 else f"{value:.2f}×"


def _network_and_rest(detail: str) -> tuple[str, str]:
    """('at a simulated 40 ms round-trip time' or 'on loopback', the other conditions) from a bench detail."""
    first, _, rest = detail.partition("; ")
    if first.startswith("simulated ") and "round-trip" in first:
        return f"At a {first.split(' (')[0]}", rest
    if first.startswith("loopback"):
        return "On loopback (no network between client and server)", rest
    return "", detail


def describe(item: store.Evidence) -> tuple[str, str]:
    """(one interpreted sentence, its conditions) for a recorded figure."""
    known = store.KNOWN_KEYS.get(item.key)
    if known is None or known.unit != "x" or not known.metric:
        meaning = known.meaning if known is not None else item.key
        amount = quantity(item.value, known.unit) if known is not None else _number(item.value)
        return f"{meaning[:1].upper()}{meaning[1:]}: {amount}", item.detail
    network, conditions = _network_and_rest(item.detail)
    value = item.value
    if known.metric == "time":
        what = (f"{known.top} took {_times(value)} as long as {known.bottom}" if value >= 1 else
                f"{known.top} took only {_times(value)} as long as {known.bottom}, so it was faster")
    elif known.metric == "throughput":
        what = (f"{known.top} sent {_times(value)} as many messages per second as {known.bottom}" if value >= 1 else
                f"{known.top} sent only {_times(value)} as many messages per second as {known.bottom}")
    else:
        what = f"{known.top} took {_times(value)} the round trips on the wire of {known.bottom}"
    if item.low is not None and item.high is not None:
        interval = f"95% interval {_times(item.low)}–{_times(item.high)}"
        conditions = f"{interval}; {conditions}" if conditions else interval
    sentence = f"{network}, {what}" if network else f"{what[:1].upper()}{what[1:]}"
    return sentence, conditions


def _citation(item: store.Evidence) -> Citation:
    sentence, conditions = describe(item)
    date = item.measured_at.split("T")[0]
    return Citation(item.key, item.claim, sentence, conditions, f"measured by {item.source} on {item.host}, {date}")


def cite(drivers: Iterable[tuple[str, Sequence[str]]], recorded: Mapping[str, store.Evidence], *,
         per_driver: int = PER_DRIVER) -> dict[str, list[Citation]]:
    """For each (driver id, its claims), in order: the figures it quotes — relevant, each once, no settings."""
    used: set[str] = set()
    out: dict[str, list[Citation]] = {}
    for driver, claims in drivers:
        chosen: list[Citation] = []
        for claim in claims:
            for key in _order(claim):
                if len(chosen) >= per_driver:
                    break
                known = store.KNOWN_KEYS.get(key)
                if key in used or key not in recorded or known is None or known.setting:
                    continue
                chosen.append(_citation(recorded[key]))
                used.add(key)
        out[driver] = chosen
    return out


def cited(citations: Mapping[str, list[Citation]]) -> list[str]:
    """Every key quoted, in the order first quoted."""
    return [c.key for group in citations.values() for c in group]
