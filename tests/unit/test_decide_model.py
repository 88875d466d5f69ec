"""The decision model: the articles' own examples reach the articles' conclusions, and the rule holds."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emailkit.decide import CHOICES, Recommendation, load_criteria, normalise_answers, score
from emailkit.errors import InvalidInput

CRITERIA = load_criteria()

# (the article (docs/sources.md), the article's sentence, the answers that describe the example, the article's conclusion)
ARTICLE_PROFILES = [
    pytest.param(
        "A4",
        "A modern web app with a Node.js backend? API, definitely.",
        {"codebase": "modern_app", "hosting": "container"},
        "api", id="004-modern-web-app"),
    pytest.param(
        "A4",
        "A WordPress site with various plugins that need to send email? SMTP, for compatibility.",
        {"codebase": "packaged", "hosting": "vm"},
        "smtp", id="004-wordpress"),
    pytest.param(
        "A4",
        "An enterprise system integrating with legacy components? Probably both.",
        {"codebase": "modern_app", "legacy_smtp": "yes", "hosting": "on_prem"},
        "hybrid", id="004-enterprise-legacy"),
    pytest.param(
        "A0",
        "A status cron job, a single-server contact form, or a script that emails one alerts address has no "
        "need for OAuth, JSON parsing, or a managed API. [...] If it's genuinely one-way and one-mailbox, "
        "SMTP is fine, and reaching for an API is over-engineering.",
        {"direction": "send_only", "volume": "low", "codebase": "script", "hosting": "vm",
         "outbound_ports": "open", "providers": "one"},
        "smtp", id="000-cron-job-one-mailbox"),
    pytest.param(
        "A0",
        "The second you need to read replies, thread conversations, support more than one provider, or run on "
        "a cloud host with port 25 blocked, [...] a REST email API replaces SMTP, IMAP, OAuth handling, and "
        "per-provider quirks with one HTTPS surface.",
        {"direction": "read_replies", "threading": "yes", "providers": "several", "user_mailboxes": "yes"},
        "api", id="000-read-replies-threads-providers"),
    pytest.param(
        "A3",
        "Serverless and edge functions: Lambda, Vercel Edge, Cloudflare Workers — these environments are "
        "stateless and often don't support persistent TCP connections. HTTP APIs work; connection-pooled SMTP doesn't.",
        {"hosting": "serverless"},
        "api", id="003-serverless"),
    pytest.param(
        "A3",
        "You need delivery visibility: Webhooks for bounce, complaint, and open events are only available "
        "through APIs. With raw SMTP, you have no feedback loop — you're sending blind.",
        {"delivery_events": "yes"},
        "api", id="003-delivery-visibility"),
    pytest.param(
        "A3",
        "Cloud environments with blocked outbound ports: AWS, GCP, and Azure block port 25 by default. Port 587 "
        "works, but many corporate firewalls block it too. Port 443 (HTTPS) is always open.",
        {"hosting": "vm", "outbound_ports": "only_443"},
        "api", id="003-blocked-ports"),
    pytest.param(
        "A4",
        "Certain compliance scenarios prefer SMTP. Some organizations require email to flow through specific "
        "internal relays for logging or filtering.",
        {"compliance_relay": "yes"},
        "smtp", id="004-compliance-relay"),
    pytest.param(
        "A4",
        "If you're building something that needs to work with any email service—a hosting control panel, a "
        "multi-tenant platform where customers bring their own email—SMTP is the common denominator.",
        {"tenant_byo": "all"},
        "smtp", id="004-hosting-panel-byo-email"),
    pytest.param(
        "A3",
        "You want to self-host everything and use Postfix / Exim [...] Only worth it at large scale with "
        "dedicated ops resources.",
        {"self_hosting": "self_host", "volume": "high", "team_time": "dedicated_ops", "hosting": "vm"},
        "smtp", id="003-self-host-postfix"),
    pytest.param(
        "A3",
        "You're working with a legacy system that only speaks SMTP. Some ERPs, CMSes, and legacy enterprise "
        "software have SMTP baked in with no alternative. If you can't change the sending code, you need an SMTP relay.",
        {"codebase": "packaged", "hosting": "on_prem", "delivery_events": "yes", "templates": "yes"},
        "smtp", id="003-erp-cannot-change-code"),
    pytest.param(
        "A4",
        "Or you might use APIs for new development while maintaining SMTP for systems that can't be easily changed.",
        {"codebase": "modern_app", "legacy_smtp": "yes", "templates": "yes", "delivery_events": "yes"},
        "hybrid", id="004-migration-both"),
    pytest.param(
        "A2",
        "As a rule of thumb, SMTP is a suitable choice for simpler use cases, while an HTTP API is a better "
        "choice for complex use cases or resource-constrained scenarios.",
        {"team_time": "little", "threading": "yes", "templates": "yes"},
        "api", id="002-complex-resource-constrained"),
]


@pytest.mark.parametrize(("seed", "sentence", "answers", "expected"), ARTICLE_PROFILES)
def test_article_profiles_reach_the_articles_conclusion(seed: str, sentence: str, answers: dict[str, str],
                                                         expected: str) -> None:
    rec = score(answers)
    assert rec.choice == expected, f"{seed}: {sentence!r} -> {rec.summary()}"
    # The recommendation explains itself: the chosen side has reasons, each naming its sources.
    if expected != "hybrid":
        assert rec.reasons_for(expected), rec.reasons
    for reason in rec.reasons:
        assert reason.seeds, reason


def test_hybrid_routes_say_which_traffic_takes_which_path() -> None:
    rec = score({"codebase": "modern_app", "legacy_smtp": "yes"})
    assert rec.choice == "hybrid"
    by_path = {route.path: route.traffic for route in rec.architecture}
    assert "speak SMTP" in by_path["smtp"]
    assert by_path["api"] == CRITERIA.architecture["rest_of_traffic"]
    # No filler row: every route is real traffic on one of the two paths.
    assert {r.path for r in rec.architecture} == {"smtp", "api"}


def test_needs_on_both_paths_make_a_hybrid_whatever_the_points() -> None:
    # WordPress sends (SMTP only) but the project must also read replies (API): both paths are needed.
    rec = score({"codebase": "packaged", "direction": "read_replies"})
    assert rec.choice == "hybrid" and rec.rule == "needs-both"
    assert {n.path for n in rec.needs} == {"smtp", "api"}


def test_an_exclusive_need_beats_the_points() -> None:
    # Every API-leaning answer, but compliance says all outbound mail goes through the relay.
    rec = score({"compliance_relay": "yes", "delivery_events": "yes", "templates": "yes",
                 "burstiness": "bursty", "team_time": "little"})
    assert rec.api_score > rec.smtp_score
    assert rec.choice == "smtp" and rec.rule == "needs-all"


def test_two_exclusive_needs_on_different_paths_are_reported_as_a_conflict() -> None:
    rec = score({"compliance_relay": "yes", "hosting": "serverless"})
    assert rec.choice == "hybrid"
    assert rec.conflicts and "serverless" in rec.conflicts[0]


def test_strong_and_close_scores_without_needs_make_a_hybrid() -> None:
    answers = {"volume": "high", "existing_relay": "yes", "self_hosting": "self_host", "team_time": "dedicated_ops",
               "hosting": "vm", "outbound_ports": "open", "delivery_events": "yes", "templates": "yes",
               "threading": "yes"}
    rec = score(answers)
    rules = CRITERIA.rules
    assert not rec.needs
    assert min(rec.smtp_score, rec.api_score) >= rules.strong and abs(rec.margin) <= rules.close
    assert rec.choice == "hybrid" and rec.rule == "strong-and-close"
    paths = {r.path for r in rec.architecture}
    assert paths == {"smtp", "api"}


def test_a_strong_and_close_hybrid_without_smtp_traffic_sends_the_rest_over_smtp() -> None:
    # Found by hypothesis: strong and close scores where only API-leaning answers name traffic. The rest
    # of the mail followed the (API) leader, leaving a "hybrid" with nothing on SMTP.
    answers = {"volume": "high", "burstiness": "bursty", "delivery_events": "yes", "codebase": "script",
               "team_time": "dedicated_ops", "cost_per_message": "critical"}
    rec = score(answers)
    assert rec.choice == "hybrid" and rec.rule == "strong-and-close"
    assert [r.traffic for r in rec.architecture if r.path == "smtp"] == [CRITERIA.architecture["rest_of_traffic"]]


def test_unknown_question_names_it_and_suggests_the_closest() -> None:
    with pytest.raises(InvalidInput) as info:
        score({"hostin": "vm"})
    assert info.value.field == "answers.hostin"
    assert "'hosting'" in info.value.fix and "direction" in info.value.fix


def test_unknown_answer_names_the_question_and_lists_the_allowed_values() -> None:
    with pytest.raises(InvalidInput) as info:
        score({"hosting": "cloud"})
    assert info.value.field == "answers.hosting"
    assert "'cloud'" in info.value.problem
    for value in CRITERIA.questions["hosting"].values:
        assert value in info.value.fix


def test_answers_read_from_yaml_booleans_and_mixed_case_are_understood() -> None:
    # YAML reads `legacy_smtp: yes` as True; CSV cells may carry spaces and capitals.
    assert normalise_answers({"legacy_smtp": True, "threading": False, "hosting": " VM "}) == {
        "legacy_smtp": "yes", "threading": "no", "hosting": "vm"}


def test_unanswered_questions_take_their_defaults_and_are_listed() -> None:
    rec = score({"hosting": "vm"})
    assert rec.answers == {**CRITERIA.defaults(), "hosting": "vm"}
    assert "hosting" not in rec.defaulted and len(rec.defaulted) == len(CRITERIA.questions) - 1


def test_recommendation_round_trips_through_json() -> None:
    rec = score({"codebase": "modern_app", "legacy_smtp": "yes", "direction": "read_replies"})
    again = Recommendation.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again == rec


def test_every_preset_is_valid_and_scores() -> None:
    assert len(CRITERIA.presets) >= 6
    for preset in CRITERIA.presets.values():
        assert score(preset.answers).choice in CHOICES


def _criteria_text() -> str:
    return (resources.files("emailkit.decide") / "criteria.yaml").read_text(encoding="utf-8")


def test_a_criteria_file_with_an_unquoted_no_label_is_refused(tmp_path) -> None:
    path = tmp_path / "criteria.yaml"
    path.write_text(_criteria_text().replace('label: "No"', "label: No", 1))
    with pytest.raises(InvalidInput) as info:
        load_criteria(path)
    assert info.value.field.endswith(".label") and "quote" in info.value.fix


def test_a_criteria_file_citing_an_unknown_claim_is_refused(tmp_path) -> None:
    path = tmp_path / "criteria.yaml"
    path.write_text(_criteria_text().replace("claims: [C13]", "claims: [C99]", 1))
    with pytest.raises(InvalidInput) as info:
        load_criteria(path)
    assert "C99" in info.value.problem


def test_the_rules_are_data_too(tmp_path) -> None:
    # A tie goes to `rules.tie`; a team that prefers SMTP on a tie edits the file, not the code.
    tied = {"direction": "send_only", "volume": "medium", "hosting": "vm", "outbound_ports": "unknown",
            "codebase": "script", "providers": "several"}
    default_rec = score(tied)
    assert default_rec.smtp_score == default_rec.api_score and default_rec.rule == "tie"
    assert default_rec.choice == CRITERIA.rules.tie == "api"
    path = tmp_path / "criteria.yaml"
    path.write_text(_criteria_text().replace("\n  tie: api\n", "\n  tie: smtp\n", 1))
    assert score(tied, load_criteria(path)).choice == "smtp"


# ------------------------------------------------------------------------ the rule, for any answers

_ANSWERS = st.fixed_dictionaries({qid: st.sampled_from(q.values) for qid, q in CRITERIA.questions.items()})


@settings(max_examples=150, deadline=None)
@given(_ANSWERS)
def test_the_documented_rule_holds_for_any_answers(answers: dict[str, str]) -> None:
    rec = score(answers)
    rules = CRITERIA.rules
    options = [CRITERIA.questions[q].option(v) for q, v in answers.items()]
    assert rec.smtp_score == sum(o.smtp for o in options)
    assert rec.api_score == sum(o.api for o in options)
    assert rec.margin == rec.api_score - rec.smtp_score
    paths = {o.needs for o in options if o.needs}
    exclusive = {o.needs for o in options if o.exclusive}
    if paths == {"smtp", "api"}:
        assert rec.choice == "hybrid" and rec.rule == "needs-both"
    elif paths:
        (path,) = paths
        if exclusive:
            assert rec.choice == path
        else:
            rest = [o for o in options if not o.needs]
            lead = sum(o.api - o.smtp for o in rest) * (1 if path == "smtp" else -1)
            assert rec.choice == ("hybrid" if lead >= rules.other_path_lead else path)
    elif min(rec.smtp_score, rec.api_score) >= rules.strong and abs(rec.margin) <= rules.close:
        assert rec.choice == "hybrid"
    elif rec.margin == 0:
        assert rec.choice == rules.tie
    else:
        assert rec.choice == ("api" if rec.margin > 0 else "smtp")
    # Reasons: every answer that gave points, strongest pull first.
    assert len(rec.reasons) == sum(1 for o in options if o.smtp or o.api)
    pulls = [abs(r.net) for r in rec.reasons]
    assert pulls == sorted(pulls, reverse=True)
    # Architecture: one route for a single path; a hybrid puts some traffic on each path (a hybrid
    # with nothing on one of its paths would be a single-path recommendation in disguise).
    route_paths = {r.path for r in rec.architecture}
    assert route_paths == ({"smtp", "api"} if rec.choice == "hybrid" else {rec.choice})
    assert all(r.traffic.strip() for r in rec.architecture)


@settings(max_examples=40, deadline=None)
@given(_ANSWERS)
def test_sensitivity_lists_exactly_the_single_changes_that_flip_the_choice(answers: dict[str, str]) -> None:
    rec = score(answers)
    listed = {(f.question, f.new_answer): f.choice for f in rec.sensitivity}
    for qid, question in CRITERIA.questions.items():
        for value in question.values:
            if value == answers[qid]:
                continue
            changed = score({**answers, qid: value}).choice
            if changed != rec.choice:
                assert listed.pop((qid, value)) == changed
    assert not listed, f"listed flips that do not flip: {listed}"


def test_public_surface_is_sorted_and_complete() -> None:
    import emailkit.decide as decide
    from emailkit import evidence

    for module in (decide, evidence):
        assert module.__all__ == sorted(module.__all__)
        assert all(hasattr(module, name) for name in module.__all__)
