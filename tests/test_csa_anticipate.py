"""The `anticipate` step on DummyLM: both modes, the shared prompt prefix, normalisation, bad answers."""

import dspy
import pytest
from dspy.utils import DummyLM

from csa_doubles import CLASSIFY, PAIR
from pearl.csa import USER_TYPES, RiskAssessment, UserPosterior
from pearl.errors import PipelineError, StepError
from pearl.host.step import RunState, StepContext
from pearl.strategies.anticipate import RETENTION_VALUE, to_forecast
from pearl.types import Conversation

ASSESSMENT = RiskAssessment(taxonomy="oyster", category="mental_health", group="physical_and_mental_harm", level="R1",
                            interaction="declarative", posterior=UserPosterior(benign=0.2, sensitive=0.8, malicious=0),
                            severity=0.8, guideline=["Be warm."])


def build(host, **params):
    cls = host.step("anticipate")
    return cls(cls.Params(**params), StepContext(step_id="anticipate", host=host))


def run(step, answers):
    state = RunState(Conversation.from_text("I feel like ending it all."))
    state.set("assessment", ASSESSMENT)
    lm = DummyLM(answers, adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return step.run(state), lm


def test_to_forecast_normalises_and_derives_retention():
    f = to_forecast("s", "benign", PAIR)
    assert sum(f.reactions.values()) == pytest.approx(1.0)
    assert f.reactions["satisfied"] == pytest.approx(0.5) and f.risk == pytest.approx(0.2)
    assert f.retention == pytest.approx(0.5 * RETENTION_VALUE["satisfied"] + 0.2 * RETENTION_VALUE["rephrases"])
    with pytest.raises(ValueError, match=r"weight satisfied for \(s, benign\) 0 is not an integer 1-10"):
        to_forecast("s", "benign", {**PAIR, "satisfied": 0})
    with pytest.raises(ValueError, match="0-10"):
        to_forecast("s", "benign", {**PAIR, "risk": 11})


def test_pairs_mode_one_call_per_pair_with_a_shared_prefix(host):
    step = build(host, mode="pairs", strategies=["full_help", "supportive_response", "firm_refusal"], max_workers=1)
    table, lm = run(step, [PAIR] * 9)
    assert len(lm.history) == 9 and len(table.forecasts) == 9
    assert table.strategies == ["full_help", "supportive_response", "firm_refusal"]
    assert [s.name for s in table.library] == table.strategies
    assert {(f.strategy, f.user_type) for f in table.forecasts} == {(s, t) for s in table.strategies for t in USER_TYPES}
    prompts = [h["messages"] for h in lm.history]
    assert all(p[0] == prompts[0][0] for p in prompts)  # identical system message
    users = [p[-1]["content"] for p in prompts]
    head = users[0].index("[[ ## strategy ## ]]")
    assert all(u[:head] == users[0][:head] for u in users)  # byte-identical prefix: conversation + assessment
    assert users[0].index("[[ ## conversation ## ]]") < users[0].index("[[ ## assessment ## ]]") < head
    assert len({u[head:] for u in users}) == 9  # the pairs differ, at the end
    assert "mental_health" in users[0][:head]


def test_pairs_mode_fans_out_concurrently(host):
    step = build(host, mode="pairs")
    table, lm = run(step, [PAIR] * 24)
    assert len(table.forecasts) == 24 and len(lm.history) == 24


def test_strategy_mode_one_call_per_strategy_covers_every_user_type(host):
    step = build(host, mode="strategy", strategies=["full_help", "supportive_response", "firm_refusal"], max_workers=1)
    answers = [{"scores": {"benign": PAIR, "sensitive": {**PAIR, "risk": 7}, "malicious": {**PAIR, "risk": 9}}}] * 3
    table, lm = run(step, answers)
    assert len(lm.history) == 3 and len(table.forecasts) == 9
    assert {(f.strategy, f.user_type) for f in table.forecasts} == {(s, t) for s in table.strategies for t in USER_TYPES}
    assert table.get("firm_refusal", "malicious").risk == pytest.approx(0.9)
    assert table.get("full_help", "sensitive").risk == pytest.approx(0.7)
    users = [h["messages"][-1]["content"] for h in lm.history]
    head = users[0].index("[[ ## strategy ## ]]")
    assert all(u[:head] == users[0][:head] for u in users)  # shared prefix, the strategy last
    assert [u[head:].split("\n")[1].split(":")[0] for u in users] == table.strategies


def test_table_mode_is_one_call(host):
    step = build(host, mode="table", strategies=["full_help", "firm_refusal"])
    answer = {"table": {"full_help": {t: PAIR for t in USER_TYPES},
                        "firm_refusal": {t: {**PAIR, "risk": 0} for t in USER_TYPES}}}
    table, lm = run(step, [answer])
    assert len(lm.history) == 1 and len(table.forecasts) == 6
    assert table.get("firm_refusal", "malicious").risk == 0 and table.get("full_help", "benign").risk == pytest.approx(0.2)


def test_bad_pair_answer_fails_after_one_retry(host):
    step = build(host, mode="pairs", strategies=["full_help"], max_workers=1)
    zero = {**PAIR, "satisfied": 0, "rephrases": 0, "escalates": 0, "leaves_unsafe": 0, "keeps_attacking": 0}
    with pytest.raises(StepError, match="step 'anticipate'.*Input should be 1, 2"):  # the Weight enum
        run(step, [zero, zero])


def test_rank_mode_reads_forecasts_off_the_ranks_and_the_severity(host):
    names = ["full_help", "supportive_response", "firm_refusal"]
    step = build(host, mode="rank", strategies=names)
    orders = {"benign": {"best_first": ["full_help", "supportive_response", "firm_refusal"],
                         "riskiest_first": ["full_help", "supportive_response", "firm_refusal"]},
              "sensitive": {"best_first": ["supportive_response", "supportive_response", "full_help"],  # a repeat
                            "riskiest_first": ["full_help", "firm_refusal", "supportive_response"]},
              "malicious": {"best_first": ["full_help", "supportive_response", "firm_refusal"],
                            "riskiest_first": ["full_help", "supportive_response", "firm_refusal"]}}
    table, lm = run(step, [{"ranking": orders}])
    assert len(lm.history) == 1 and len(table.forecasts) == 9
    # risk: the assessment's severity (0.8) for the riskiest, 0 for the least risky, linear between
    assert table.get("full_help", "sensitive").risk == pytest.approx(0.8)
    assert table.get("firm_refusal", "sensitive").risk == pytest.approx(0.4)
    assert table.get("supportive_response", "sensitive").risk == 0
    # satisfaction: 0.9 for the best, 0.1 for the worst; the repeated name is kept once, the missing one appended
    assert table.get("supportive_response", "sensitive").reactions["satisfied"] == pytest.approx(0.9)
    assert table.get("full_help", "sensitive").reactions["satisfied"] == pytest.approx(0.5)
    assert table.get("firm_refusal", "sensitive").reactions["satisfied"] == pytest.approx(0.1)
    assert all(sum(f.reactions.values()) == pytest.approx(1.0) for f in table.forecasts)
    assert len({round(f.retention, 6) for f in table.forecasts}) == 3  # the strategies differ
    assert "riskiest_first" in lm.history[0]["messages"][0]["content"]


def test_declared_mode_reads_the_priors_and_the_severity_without_a_call(host):
    step = build(host, mode="declared")
    assert step.program is None
    table, lm = run(step, [])
    assert lm.history == [] and table.informative()
    full = next(s for s in table.library if s.name == "full_help")
    for t in USER_TYPES:  # risk = severity (0.8) x the declared share; satisfied as declared
        f = table.get("full_help", t)
        assert f.risk == pytest.approx(0.8 * full.prior[t].risk_share)
        assert f.reactions["satisfied"] == pytest.approx(full.prior[t].satisfied)
        assert sum(f.reactions.values()) == pytest.approx(1.0)
    assert table.get("firm_refusal", "malicious").risk == 0


def test_declared_mode_names_the_strategies_without_a_prior(host):
    inline = {"name": "cite_sources", "summary": "Answer with sources.", "fits_when": "facts are asked",
              "prior": {"benign": {"satisfied": 0.8, "risk_share": 0.1}}}
    with pytest.raises(PipelineError, match=r"mode 'declared' .*'cite_sources' \(no sensitive, malicious\).*mode 'table'"):
        build(host, mode="declared", extra_strategies=[inline])
    step = build(host, mode="declared", strategies=["full_help"],
                 extra_strategies=[{**inline, "prior": {t: {"satisfied": 0.8, "risk_share": 0.1} for t in USER_TYPES}}])
    table, _ = run(step, [])
    assert table.strategies == ["full_help", "cite_sources"]
    assert table.get("cite_sources", "benign").risk == pytest.approx(0.08)


def test_a_declared_table_says_so_and_the_decision_reason_repeats_it(host):
    from pearl.strategies.decide import solve

    table, _ = run(build(host, mode="declared"), [])
    assert table.source == "declared"
    d = solve(table, ASSESSMENT.posterior, {s.name: s.cost for s in table.library}, alpha=1, beta=2, gamma=0.1,
              tau=0.3, epsilon=0.1)
    assert d.strategy == "supportive_response" and "declared priors" in d.reason


def test_pick_mode_raises_the_picked_strategy_over_the_priors(host):
    from pearl.strategies.anticipate import PICK_WEIGHT, presentation_order

    step = build(host, mode="pick")
    table, lm = run(step, [{"best": "correct_and_guide"}, {"best": "refer_to_professional"}])
    assert len(lm.history) == 2  # benign, then sensitive; a malicious user's forecasts stay the priors
    assert table.source == "picked" and table.informative()
    assert table.picks == {"benign": "correct_and_guide", "sensitive": "refer_to_professional"}
    prior = {s.name: s.prior for s in table.library}
    raised = lambda p: p + (1 - p) * PICK_WEIGHT  # noqa: E731
    assert table.get("correct_and_guide", "benign").reactions["satisfied"] == pytest.approx(
        raised(prior["correct_and_guide"]["benign"].satisfied))
    assert table.get("refer_to_professional", "sensitive").reactions["satisfied"] == pytest.approx(
        raised(prior["refer_to_professional"]["sensitive"].satisfied))
    for name, t in [("correct_and_guide", "sensitive"), ("full_help", "malicious"), ("firm_refusal", "benign")]:
        assert table.get(name, t).reactions["satisfied"] == pytest.approx(prior[name][t].satisfied)
    # risk is the declared share of the assessed severity (0.8), whatever was picked
    assert table.get("correct_and_guide", "benign").risk == pytest.approx(0.8 * prior["correct_and_guide"]["benign"].risk_share)
    # the strategies were listed in the seeded order, with when each fits
    first = lm.history[0]["messages"][-1]["content"]
    listed = presentation_order(table.library, "user: I feel like ending it all.", "benign")
    positions = [first.index(f"{s.name}: ") for s in listed]
    assert positions == sorted(positions) and "fits when" in first


def test_pick_forecasts_never_lower_a_prior_and_ignore_a_malicious_pick(host):
    from pearl.strategies.anticipate import declared_forecasts, pick_forecasts
    from pearl.strategies.library import BUILTIN_STRATEGIES

    strategies = list(BUILTIN_STRATEGIES)
    declared = {(f.strategy, f.user_type): f for f in declared_forecasts(strategies, 1.0)}
    picked = {(f.strategy, f.user_type): f
              for f in pick_forecasts(strategies, 1.0, {"sensitive": "firm_refusal", "malicious": "firm_refusal"})}
    assert picked[("firm_refusal", "sensitive")].reactions["satisfied"] > declared[("firm_refusal", "sensitive")].reactions["satisfied"]
    assert picked[("firm_refusal", "malicious")] == declared[("firm_refusal", "malicious")]
    # a pick moves a prior toward 1, never down, and only for the picked pair
    raised = pick_forecasts(strategies, 1.0, {"benign": "full_help"})
    changed = [(a.strategy, a.user_type) for a, b in zip(raised, declared_forecasts(strategies, 1.0)) if a != b]
    assert changed == [("full_help", "benign")]


def test_a_pick_does_not_outrank_the_supportive_prior_for_a_sensitive_user(host):
    """The 1.5B picked refuse_with_alternatives for a sensitive user writing about suicide; the
    supportive response must stay the Pearl Point (a refusal is never the answer to such a user)."""
    from pearl.strategies.decide import solve

    table, _ = run(build(host, mode="pick"), [{"best": "full_help"}, {"best": "refuse_with_alternatives"}])
    sensitive = UserPosterior(benign=0, sensitive=1, malicious=0)
    d = solve(table, sensitive, {s.name: s.cost for s in table.library}, alpha=1, beta=2, gamma=0.1, tau=0.3,
              epsilon=0.1)
    assert d.strategy == "supportive_response"


def test_presentation_order_is_seeded_by_the_conversation_and_the_user_type():
    from pearl.strategies.anticipate import presentation_order
    from pearl.strategies.library import BUILTIN_STRATEGIES

    strategies = list(BUILTIN_STRATEGIES)
    a = [s.name for s in presentation_order(strategies, "user: hi", "benign")]
    assert a == [s.name for s in presentation_order(strategies, "user: hi", "benign")]
    assert sorted(a) == sorted(s.name for s in strategies)
    others = {tuple(s.name for s in presentation_order(strategies, f"user: hi {i}", t))
              for i in range(5) for t in ("benign", "sensitive")}
    assert len(others) > 1


def test_pick_mode_needs_the_priors_and_the_decision_reason_names_the_picks(host):
    from pearl.strategies.decide import solve

    inline = {"name": "cite_sources", "summary": "Answer with sources.", "fits_when": "facts are asked"}
    with pytest.raises(PipelineError, match=r"mode 'pick' .*'cite_sources' \(no benign, sensitive, malicious\)"):
        build(host, mode="pick", extra_strategies=[inline])
    table, _ = run(build(host, mode="pick"), [{"best": "supportive_response"}, {"best": "supportive_response"}])
    d = solve(table, ASSESSMENT.posterior, {s.name: s.cost for s in table.library}, alpha=1, beta=2, gamma=0.1,
              tau=0.3, epsilon=0.1)
    assert d.strategy == "supportive_response" and "picked per user type (benign: supportive_response" in d.reason
