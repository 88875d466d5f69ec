"""The decision model: criteria from a data file, and `score(answers)` -> `Recommendation`.

The criteria (questions, answers, points, reasons, claim ids) live in `criteria.yaml` beside this
module; nothing about them is code. The rule that turns answers into a choice is this:

1. **Points.** Every question has one answer (an unanswered question takes its default). Each
   answer gives 0-5 points toward SMTP and toward the API. A side's score is the sum of its points;
   ``margin = api - smtp`` (positive favours the API).
2. **Needs.** Some answers say that some traffic can only take one path (``needs: smtp|api``, e.g.
   legacy systems that only speak SMTP, reading replies), or that *all* the project's sending must
   (``exclusive: true``, e.g. packaged software such as WordPress, a mandatory compliance relay,
   serverless functions).

   a. Needs on both paths -> **hybrid**: each needy traffic takes its path. (Two *exclusive* needs on
      different paths contradict each other; the recommendation lists that under ``conflicts``.)
   b. Needs on one path P only: an exclusive need -> **P**. Otherwise the answers that do not carry
      the need decide the rest of the traffic: if they favour the other path by at least
      ``rules.other_path_lead`` points -> **hybrid** (the needy traffic on P, the rest on the other
      path), else -> **P** for everything.
3. **No needs.** Both scores at least ``rules.strong`` and at most ``rules.close`` apart ->
   **hybrid** (each side's strongest traffic takes its path). Otherwise the higher score wins; an exact
   tie goes to ``rules.tie`` (the API: the articles' default for a new integration).

``Recommendation.reasons`` lists every answer that gave points, ranked by how much it pulled one
way (``|api - smtp|``), then by its total. ``Recommendation.sensitivity`` lists every change of a
single answer that would change the choice, the smallest change in points first (the decision's most
fragile spot). `score` is pure (no I/O once the criteria are loaded) and fast: well under a
millisecond with the sensitivity, which rescores every alternative answer.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from emailkit.errors import InvalidInput

__all__ = [
    "CHOICES",
    "Candidate",
    "Criteria",
    "Flip",
    "Group",
    "Need",
    "Option",
    "Point",
    "Preset",
    "Question",
    "Reason",
    "Recommendation",
    "Route",
    "Rules",
    "criteria_frame",
    "load_criteria",
    "normalise_answers",
    "score",
]

PathName = Literal["smtp", "api"]
Choice = Literal["smtp", "api", "hybrid"]
CHOICES: tuple[str, ...] = ("smtp", "api", "hybrid")
_MAX_POINTS = 5


# ----------------------------------------------------------------------------- criteria


@dataclass(frozen=True)
class Option:
    """One answer to a question, with its points, reason and sources."""

    value: str
    label: str
    smtp: int
    api: int
    reason: str
    claims: tuple[str, ...]
    seeds: tuple[str, ...]
    needs: PathName | None = None
    exclusive: bool = False
    traffic: str | None = None


@dataclass(frozen=True)
class Point:
    """A general pro or con of one considered option, with its sources."""

    text: str
    claims: tuple[str, ...]
    seeds: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """One considered option (SMTP, REST email API, hybrid) and its general pros and cons."""

    id: str
    title: str
    summary: str
    good: tuple[Point, ...]
    bad: tuple[Point, ...]


@dataclass(frozen=True)
class Question:
    id: str
    group: str
    text: str
    help: str
    default: str
    options: tuple[Option, ...]

    def option(self, value: str) -> Option:
        for option in self.options:
            if option.value == value:
                return option
        raise KeyError(value)

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(option.value for option in self.options)


@dataclass(frozen=True)
class Group:
    id: str
    title: str
    help: str


@dataclass(frozen=True)
class Preset:
    id: str
    label: str
    description: str
    answers: Mapping[str, str]


@dataclass(frozen=True)
class Rules:
    strong: int
    close: int
    other_path_lead: int
    tie: PathName
    tie_reason: str


@dataclass(frozen=True)
class Criteria:
    """The whole model as loaded from `criteria.yaml`."""

    version: str
    candidates: Mapping[str, Candidate]  # smtp, api, hybrid
    rules: Rules
    architecture: Mapping[str, str]
    claims: Mapping[str, str]
    seeds: Mapping[str, Mapping[str, str]]
    groups: tuple[Group, ...]
    questions: Mapping[str, Question]  # in the file's order
    presets: Mapping[str, Preset]

    def title(self, choice: str) -> str:
        return self.candidates[choice].title

    def defaults(self) -> dict[str, str]:
        return {qid: q.default for qid, q in self.questions.items()}


def _require(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw:
        raise InvalidInput(f"{where}.{key}", "is missing", fix=f"add {key!r} to {where} in the criteria file")
    return raw[key]


def _text(value: Any, where: str) -> str:
    # YAML turns a bare No/Yes into a boolean: insist on real strings so labels never read "False".
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(where, f"{value!r} is not text", fix='quote it in the criteria file, e.g. label: "No"')
    return value


def _points(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_POINTS:
        raise InvalidInput(where, f"{value!r} is not a whole number of points from 0 to {_MAX_POINTS}",
                           fix="give each side 0-5 points")
    return value


def _sources(raw: Mapping[str, Any], where: str, claims: Mapping[str, str],
             seeds: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    cited = tuple(str(c) for c in raw.get("claims") or ())
    cited_seeds = tuple(str(s) for s in _require(raw, "seeds", where))
    for c in cited:
        if c not in claims:
            raise InvalidInput(f"{where}.claims", f"{c!r} is not a claim id", fix=f"use one of {sorted(claims)}")
    for s in cited_seeds:
        if s not in seeds:
            raise InvalidInput(f"{where}.seeds", f"{s!r} is not a seed id", fix=f"use one of {sorted(seeds)}")
    return cited, cited_seeds


def _parse(raw: Mapping[str, Any]) -> Criteria:
    claims = {str(k): str(v) for k, v in _require(raw, "claims", "criteria").items()}
    seeds = {str(k): dict(v) for k, v in _require(raw, "seeds", "criteria").items()}
    candidates: dict[str, Candidate] = {}
    for cid in CHOICES:
        c = _require(_require(raw, "options", "criteria"), cid, "options")
        points = {
            kind: tuple(Point(str(p["text"]), *_sources(p, f"options.{cid}.{kind}", claims, seeds))
                        for p in c.get(kind) or ())
            for kind in ("good", "bad")
        }
        candidates[cid] = Candidate(cid, str(c["title"]), str(c.get("summary", "")), points["good"], points["bad"])
    groups = tuple(Group(str(g["id"]), str(g["title"]), str(g["help"])) for g in _require(raw, "groups", "criteria"))
    group_ids = {g.id for g in groups}
    questions: dict[str, Question] = {}
    for q in _require(raw, "questions", "criteria"):
        qid = str(_require(q, "id", "question"))
        where = f"questions.{qid}"
        if qid in questions:
            raise InvalidInput(where, "is defined twice", fix="give every question its own id")
        options = []
        for o in _require(q, "options", where):
            value = str(_require(o, "value", f"{where}.options"))
            ow = f"{where}.{value}"
            needs = o.get("needs")
            if needs not in (None, "smtp", "api"):
                raise InvalidInput(f"{ow}.needs", f"{needs!r} is not a path", fix="use needs: smtp or needs: api")
            if (needs or o.get("exclusive")) and not o.get("traffic"):
                raise InvalidInput(f"{ow}.traffic", "is missing", fix="say which traffic needs the path")
            if o.get("exclusive") and not needs:
                raise InvalidInput(f"{ow}.exclusive", "is set without needs", fix="add needs: smtp|api")
            cited, cited_seeds = _sources(o, ow, claims, seeds)
            options.append(Option(
                value=value, label=_text(_require(o, "label", ow), f"{ow}.label"),
                smtp=_points(_require(o, "smtp", ow), f"{ow}.smtp"), api=_points(_require(o, "api", ow), f"{ow}.api"),
                reason=_text(_require(o, "reason", ow), f"{ow}.reason"), claims=cited, seeds=cited_seeds,
                needs=needs, exclusive=bool(o.get("exclusive", False)), traffic=o.get("traffic"),
            ))
        question = Question(id=qid, group=str(_require(q, "group", where)),
                            text=_text(_require(q, "text", where), f"{where}.text"),
                            help=str(q.get("help", "")), default=str(_require(q, "default", where)),
                            options=tuple(options))
        if question.group not in group_ids:
            raise InvalidInput(f"{where}.group", f"{question.group!r} is not a group", fix=f"use one of {sorted(group_ids)}")
        if question.default not in question.values:
            raise InvalidInput(f"{where}.default", f"{question.default!r} is not one of its answers",
                               fix=f"use one of {list(question.values)}")
        questions[qid] = question
    rules_raw = _require(raw, "rules", "criteria")
    if rules_raw.get("tie") not in ("smtp", "api"):
        raise InvalidInput("rules.tie", f"{rules_raw.get('tie')!r} is not a path", fix="use tie: smtp or tie: api")
    rules = Rules(strong=int(rules_raw["strong"]), close=int(rules_raw["close"]),
                  other_path_lead=int(rules_raw["other_path_lead"]), tie=rules_raw["tie"],
                  tie_reason=str(rules_raw["tie_reason"]))
    criteria = Criteria(
        version=str(_require(raw, "version", "criteria")), candidates=candidates,
        rules=rules, architecture=_require(raw, "architecture", "criteria"), claims=claims, seeds=seeds,
        groups=groups, questions=questions, presets={},
    )
    presets: dict[str, Preset] = {}
    for p in raw.get("presets") or ():
        answers = normalise_answers(p.get("answers") or {}, criteria, where=f"presets.{p['id']}")
        presets[str(p["id"])] = Preset(str(p["id"]), str(p["label"]), str(p.get("description", "")), answers)
    return replace(criteria, presets=presets)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str | None) -> Criteria:
    if path is None:
        text = resources.files("emailkit.decide").joinpath("criteria.yaml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return _parse(yaml.safe_load(text))


def load_criteria(path: str | Path | None = None) -> Criteria:
    """The criteria from `path` (default: the `criteria.yaml` shipped with emailkit), parsed once."""
    return _load_cached(None if path is None else str(Path(path).resolve()))


def criteria_frame(criteria: Criteria | None = None) -> Any:
    """Every answer of every question with its points, needs and sources, as a pandas DataFrame."""
    import pandas as pd

    criteria = criteria or load_criteria()
    rows = [
        {"question": q.id, "answer": o.value, "label": o.label, "smtp": o.smtp, "api": o.api,
         "needs": (o.needs or "") + (" (all)" if o.exclusive else ""), "default": o.value == q.default,
         "claims": ", ".join(o.claims), "seeds": ", ".join(o.seeds)}
        for q in criteria.questions.values() for o in q.options
    ]
    return pd.DataFrame(rows).set_index(["question", "answer"])


# ----------------------------------------------------------------------------- answers


def _as_value(value: Any) -> str:
    # YAML reads yes/no/on/off as booleans; the criteria spell them "yes"/"no".
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value).strip().lower()


def normalise_answers(answers: Mapping[str, Any], criteria: Criteria | None = None, *,
                      where: str = "answers") -> dict[str, str]:
    """Check `answers` against the criteria and return them as {question id: answer value}.

    Raises `InvalidInput` naming the question (``answers.<id>``) for an unknown question id or an
    answer that is not one of the question's values, with the allowed values in ``fix``.
    Unanswered questions are *not* filled in here (`score` does that).
    """
    criteria = criteria or load_criteria()
    if not isinstance(answers, Mapping):
        raise InvalidInput(where, f"must be a mapping of question id to answer, not {type(answers).__name__}",
                           fix="write one 'question: answer' per line")
    clean: dict[str, str] = {}
    for qid, value in answers.items():
        qid = str(qid).strip()
        question = criteria.questions.get(qid)
        if question is None:
            close = difflib.get_close_matches(qid, criteria.questions, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InvalidInput(f"{where}.{qid}", "is not a question of the decision model",
                               fix=f"{hint}questions are: {', '.join(criteria.questions)}")
        text = _as_value(value)
        if text not in question.values:
            raise InvalidInput(f"{where}.{qid}", f"{value!r} is not an answer to {qid!r} ({question.text})",
                               fix=f"use one of: {', '.join(question.values)}")
        clean[qid] = text
    return clean


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Reason:
    """One answer's pull: its points on each side, the sentence saying why, and its sources."""

    question: str
    question_text: str
    answer: str
    answer_label: str
    smtp: int
    api: int
    text: str
    claims: tuple[str, ...]
    seeds: tuple[str, ...]

    @property
    def net(self) -> int:
        """Points toward the API minus points toward SMTP."""
        return self.api - self.smtp

    @property
    def favours(self) -> str:
        return "api" if self.net > 0 else "smtp" if self.net < 0 else "both"


@dataclass(frozen=True)
class Need:
    """Traffic that can only take one path, because of one answer."""

    path: str
    question: str
    answer: str
    traffic: str
    exclusive: bool


@dataclass(frozen=True)
class Route:
    """Which traffic takes which path, and how."""

    traffic: str
    path: str
    how: str


@dataclass(frozen=True)
class Flip:
    """A change of one answer that would change the choice."""

    question: str
    question_text: str
    answer: str
    new_answer: str
    new_answer_label: str
    choice: str
    smtp_score: int
    api_score: int


@dataclass(frozen=True)
class Recommendation:
    """What `score` concludes, with everything a report needs to show why."""

    choice: str
    title: str
    smtp_score: int
    api_score: int
    margin: int
    rule: str
    why: str
    reasons: tuple[Reason, ...]
    needs: tuple[Need, ...]
    architecture: tuple[Route, ...]
    sensitivity: tuple[Flip, ...]
    conflicts: tuple[str, ...]
    answers: dict[str, str]
    defaulted: tuple[str, ...]
    criteria_version: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; `from_dict` gives an equal `Recommendation` back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recommendation:
        nested = {"reasons": Reason, "needs": Need, "architecture": Route, "sensitivity": Flip}
        values = dict(data)
        for name, kind in nested.items():
            values[name] = tuple(
                kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in item.items()})
                for item in values[name]
            )
        for name in ("conflicts", "defaulted"):
            values[name] = tuple(values[name])
        values["answers"] = dict(values["answers"])
        return cls(**values)

    def reasons_for(self, path: str) -> tuple[Reason, ...]:
        """The reasons that pull toward `path` ("smtp" or "api"), strongest first."""
        return tuple(r for r in self.reasons if r.favours == path)

    def summary(self) -> str:
        return f"{self.title} (SMTP {self.smtp_score}, API {self.api_score}): {self.why}"


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class _Outcome:
    choice: str
    rule: str
    smtp: int
    api: int
    needs: tuple[Need, ...]
    rest_margin: int


_PATH_NAMES = {"smtp": "SMTP", "api": "API"}


def _other(path: str) -> str:
    return "api" if path == "smtp" else "smtp"


def _decide(answers: Mapping[str, str], criteria: Criteria) -> _Outcome:
    smtp = api = 0
    need_smtp = need_api = 0
    needs: list[Need] = []
    for qid, value in answers.items():
        option = criteria.questions[qid].option(value)
        smtp += option.smtp
        api += option.api
        if option.needs:
            needs.append(Need(option.needs, qid, value, option.traffic or "", option.exclusive))
            need_smtp += option.smtp
            need_api += option.api
    rules = criteria.rules
    paths = {n.path for n in needs}
    rest_margin = (api - need_api) - (smtp - need_smtp)
    if paths == {"smtp", "api"}:
        return _Outcome("hybrid", "needs-both", smtp, api, tuple(needs), rest_margin)
    if paths:
        (path,) = paths
        if any(n.exclusive for n in needs):
            return _Outcome(path, "needs-all", smtp, api, tuple(needs), rest_margin)
        lead = rest_margin if path == "smtp" else -rest_margin  # how far the rest favours the other path
        if lead >= rules.other_path_lead:
            return _Outcome("hybrid", "needs-one-rest-other", smtp, api, tuple(needs), rest_margin)
        return _Outcome(path, "needs-one", smtp, api, tuple(needs), rest_margin)
    margin = api - smtp
    if min(smtp, api) >= rules.strong and abs(margin) <= rules.close:
        return _Outcome("hybrid", "strong-and-close", smtp, api, (), margin)
    if margin == 0:
        return _Outcome(rules.tie, "tie", smtp, api, (), margin)
    return _Outcome("api" if margin > 0 else "smtp", "score", smtp, api, (), margin)


def _why(outcome: _Outcome, criteria: Criteria, reasons: tuple[Reason, ...]) -> str:
    smtp, api = outcome.smtp, outcome.api
    title = criteria.title

    def listing(path: str) -> str:
        return "; ".join(n.traffic for n in outcome.needs if n.path == path)

    if outcome.rule == "needs-both":
        return (f"some mail can only go over SMTP ({listing('smtp')}) and some only through the API "
                f"({listing('api')}), so each takes its own path")
    if outcome.rule == "needs-all":
        path = outcome.choice
        return (f"all of the project's sending must go over {title(path)} ({listing(path)}); "
                f"the points (SMTP {smtp}, API {api}) cannot change that")
    if outcome.rule == "needs-one-rest-other":
        path = next(n.path for n in outcome.needs)
        other = _other(path)
        lead = abs(outcome.rest_margin)
        return (f"{listing(path)} can only go over {title(path)}, while the rest of your answers "
                f"favour {title(other)} by {lead} point{'s' if lead != 1 else ''}, so the rest of the traffic takes it")
    if outcome.rule == "needs-one":
        path = outcome.choice
        return (f"{listing(path)} can only go over {title(path)}, and the rest of your answers do not favour "
                f"{title(_other(path))} enough to run a second integration")
    if outcome.rule == "strong-and-close":
        return (f"both sides score strongly (SMTP {smtp}, API {api}, within {criteria.rules.close} points), "
                "so each kind of traffic takes the path its strongest reasons point to")
    if outcome.rule == "tie":
        return f"the scores tie at {smtp}, and {criteria.rules.tie_reason}"
    winner = outcome.choice
    top = next((r for r in reasons if r.favours == winner), None)
    lead = abs(api - smtp)
    because = f"; the strongest reason: {top.text}" if top else ""
    name = title(winner) if winner == "smtp" else f"the {title(winner)}"
    return f"{name} leads by {lead} point{'s' if lead != 1 else ''} (SMTP {smtp}, API {api}){because}"


def _routes(outcome: _Outcome, criteria: Criteria, reasons: tuple[Reason, ...]) -> tuple[Route, ...]:
    how = criteria.architecture
    rest = how["rest_of_traffic"]
    if outcome.choice in ("smtp", "api"):
        path = outcome.choice
        return (Route("all of the project's mail", path, how[path]),)
    routes: list[Route] = []
    if outcome.needs:
        for need in outcome.needs:
            routes.append(Route(need.traffic, need.path, how[need.path]))
        if outcome.rule == "needs-one-rest-other":
            other = _other(outcome.needs[0].path)
            routes.append(Route(rest, other, how[other]))
        else:  # needs on both paths: everything else follows the points (tie: rules.tie)
            margin = outcome.api - outcome.smtp
            leader = "api" if margin > 0 else "smtp" if margin < 0 else criteria.rules.tie
            routes.append(Route(rest, leader, how[leader]))
    else:  # strong and close: each side's strongest traffic takes its side
        for path in ("smtp", "api"):
            for reason in reasons:
                option = criteria.questions[reason.question].option(reason.answer)
                if reason.favours == path and option.traffic:
                    routes.append(Route(option.traffic, path, how[path]))
        # A hybrid needs mail on both paths. The rest of the traffic follows the points, unless one
        # path has no traffic of its own: then the rest takes that path (else that path would be empty).
        covered = {r.path for r in routes}
        missing = [p for p in ("smtp", "api") if p not in covered]
        margin = outcome.api - outcome.smtp
        leader = "api" if margin > 0 else "smtp" if margin < 0 else criteria.rules.tie
        rest_path = missing[0] if missing else leader
        routes.append(Route(rest, rest_path, how[rest_path]))
        for path in missing[1:]:  # neither path had traffic of its own: name the answers that pull there
            labels = "; ".join(r.answer_label.lower() for r in reasons if r.favours == path)
            routes.append(Route(f"the mail your {_PATH_NAMES[path]}-leaning answers describe ({labels})", path, how[path]))
    return tuple(routes)


def _reasons(answers: Mapping[str, str], criteria: Criteria) -> tuple[Reason, ...]:
    found = []
    for order, (qid, value) in enumerate(answers.items()):
        question = criteria.questions[qid]
        option = question.option(value)
        if option.smtp == 0 and option.api == 0:
            continue
        found.append((order, Reason(qid, question.text, value, option.label, option.smtp, option.api,
                                    option.reason, option.claims, option.seeds)))
    found.sort(key=lambda item: (-abs(item[1].net), -(item[1].smtp + item[1].api), item[0]))
    return tuple(reason for _, reason in found)


def score(answers: Mapping[str, Any], criteria: Criteria | None = None) -> Recommendation:
    """Score a project's answers: SMTP, API or hybrid, with reasons, sensitivity and architecture.

    `answers` maps question ids to answer values (see `criteria.yaml`); unanswered questions take
    their defaults and are listed in ``Recommendation.defaulted``. Raises `InvalidInput` for an
    unknown question or answer. Pure: the same answers always give the same result.

    >>> rec = score({"codebase": "packaged", "hosting": "vm"})
    >>> rec.choice, rec.rule, rec.reasons[0].question
    ('smtp', 'needs-all', 'codebase')
    """
    criteria = criteria or load_criteria()
    given = normalise_answers(answers, criteria)
    full = {qid: given.get(qid, q.default) for qid, q in criteria.questions.items()}
    outcome = _decide(full, criteria)
    reasons = _reasons(full, criteria)
    conflicts: list[str] = []
    exclusive = {n.path: n for n in outcome.needs if n.exclusive}
    if len(exclusive) == 2:
        conflicts.append(
            f"{exclusive['smtp'].traffic} must go over SMTP, yet {exclusive['api'].traffic} can only use the API: "
            "run the SMTP part from a host that can hold SMTP connections (or have the relay accept HTTPS), "
            "or revisit one of these answers"
        )
    flips = []
    for qid, question in criteria.questions.items():
        for option in question.options:
            if option.value == full[qid]:
                continue
            changed = _decide({**full, qid: option.value}, criteria)
            if changed.choice != outcome.choice:
                shift = abs((changed.api - changed.smtp) - (outcome.api - outcome.smtp))
                flips.append((shift, Flip(qid, question.text, full[qid], option.value, option.label,
                                          changed.choice, changed.smtp, changed.api)))
    flips.sort(key=lambda item: item[0])  # stable: equal shifts keep the questions' order
    return Recommendation(
        choice=outcome.choice, title=criteria.title(outcome.choice), smtp_score=outcome.smtp,
        api_score=outcome.api, margin=outcome.api - outcome.smtp, rule=outcome.rule,
        why=_why(outcome, criteria, reasons), reasons=reasons, needs=outcome.needs,
        architecture=_routes(outcome, criteria, reasons), sensitivity=tuple(f for _, f in flips),
        conflicts=tuple(conflicts), answers=full,
        defaulted=tuple(qid for qid in criteria.questions if qid not in given),
        criteria_version=criteria.version,
    )
