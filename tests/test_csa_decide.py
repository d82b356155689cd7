"""The Pearl-Point solver: hand-computed cases, exhaustive checks, hypothesis properties."""

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from pearl.csa import USER_TYPES, ReactionForecast, ReactionTable, UserPosterior
from pearl.strategies.decide import solve


def make_table(rows: dict[str, dict[str, tuple[float, float]]]) -> ReactionTable:
    """rows: strategy -> user type -> (retention, risk)."""
    forecasts = []
    for s, per_type in rows.items():
        for t in USER_TYPES:
            retention, risk = per_type[t]
            forecasts.append(ReactionForecast(strategy=s, user_type=t, retention=retention, risk=risk,
                                              reactions={"satisfied": 1.0}))
    return ReactionTable(strategies=list(rows), forecasts=forecasts)


def uniform(ret, risk):
    return {t: (ret, risk) for t in USER_TYPES}


def test_hand_computed_case():
    table = make_table({
        "help": {"benign": (0.9, 0.1), "sensitive": (0.8, 0.2), "malicious": (0.9, 0.9)},
        "support": {"benign": (0.6, 0.0), "sensitive": (0.9, 0.1), "malicious": (0.3, 0.1)},
        "refuse": {"benign": (0.1, 0.0), "sensitive": (0.1, 0.0), "malicious": (0.2, 0.0)},
    })
    post = UserPosterior(benign=0.5, sensitive=0.4, malicious=0.1)
    costs = {"help": 0.8, "support": 0.6, "refuse": 0.1}
    d = solve(table, post, costs, alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    rows = {r.strategy: r for r in d.table}
    # help: R = .45+.32+.09 = .86, K = .05+.08+.09 = .22, U = .86 - .44 - .08 = .34; worst risk .9 (malicious >= eps)
    assert rows["help"].expected_retention == pytest.approx(0.86)
    assert rows["help"].expected_risk == pytest.approx(0.22)
    assert rows["help"].expected_utility == pytest.approx(0.34)
    assert not rows["help"].admissible and rows["help"].worst_risk == pytest.approx(0.9)
    # support: R = .30+.36+.03 = .69, K = 0+.04+.01 = .05, U = .69 - .10 - .06 = .53
    assert rows["support"].expected_utility == pytest.approx(0.53)
    # refuse: R = .05+.04+.02 = .11, K = 0, U = .11 - .01 = .10
    assert rows["refuse"].expected_utility == pytest.approx(0.10)
    assert d.strategy == "support" and d.admissible and "highest expected utility" in d.reason
    # with epsilon above the malicious posterior, 'help' becomes admissible but still loses on utility
    d2 = solve(table, post, costs, alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.2)
    assert {r.strategy: r.admissible for r in d2.table}["help"] and d2.strategy == "support"
    # with beta = 0 and epsilon above 0.1, plain retention wins
    d3 = solve(table, post, costs, alpha=1, beta=0, gamma=0, tau=0.3, epsilon=0.2)
    assert d3.strategy == "help"


def test_none_admissible_picks_least_risky_and_flags():
    table = make_table({"a": uniform(0.9, 0.8), "b": uniform(0.5, 0.5), "c": uniform(0.1, 0.6)})
    d = solve(table, UserPosterior(benign=1, sensitive=0, malicious=0), {"a": 0, "b": 0, "c": 0},
              alpha=1, beta=1, gamma=0, tau=0.3, epsilon=0.1)
    assert d.strategy == "b" and not d.admissible and "no strategy stays inside" in d.reason


def test_ties_are_broken_deterministically():
    # w, worse for everyone, makes the table informative, so the tie-breaks (not the fallback) decide
    table = make_table({"x": uniform(0.5, 0.1), "y": uniform(0.5, 0.1), "z": uniform(0.5, 0.1), "w": uniform(0.1, 0.1)})
    post = UserPosterior(benign=0.2, sensitive=0.3, malicious=0.5)
    costs = {"x": 0.5, "y": 0.2, "z": 0.2, "w": 0.0}
    d = solve(table, post, costs, alpha=1, beta=1, gamma=0, tau=1, epsilon=0.1)
    assert d.strategy == "y"  # equal utility and risk: the lower cost, then table order
    d = solve(table, post, costs, alpha=1, beta=1, gamma=1, tau=1, epsilon=0.1)
    assert d.strategy == "y"


GRID = [0.0, 0.5, 1.0]


def test_exhaustive_small_grid():
    """Every table of 2 strategies over a 3-value grid, 3 posteriors: the choice matches brute force."""
    posteriors = [UserPosterior(benign=1, sensitive=0, malicious=0), UserPosterior(benign=0.5, sensitive=0.5, malicious=0),
                  UserPosterior(benign=0.2, sensitive=0.3, malicious=0.5)]
    cells = list(itertools.product(GRID, GRID))  # (retention, risk)
    checked = 0
    for a_b, a_m, b_b, b_m in itertools.product(cells, repeat=4):
        rows = {"a": {"benign": a_b, "sensitive": a_b, "malicious": a_m},
                "b": {"benign": b_b, "sensitive": b_b, "malicious": b_m}}
        table = make_table(rows)
        for post in posteriors:
            d = solve(table, post, {"a": 0.3, "b": 0.6}, alpha=1, beta=2, gamma=0.1, tau=0.5, epsilon=0.1)
            p = post.as_dict()
            likely = [t for t in USER_TYPES if p[t] >= 0.1]
            util = {s: sum(p[t] * (rows[s][t][0] - 2 * rows[s][t][1]) for t in USER_TYPES) - 0.1 * {"a": 0.3, "b": 0.6}[s]
                    for s in rows}
            ok = [s for s in rows if all(rows[s][t][1] <= 0.5 for t in likely)]
            if ok:
                best = max(util[s] for s in ok)
                assert d.admissible and d.strategy in ok and util[d.strategy] == pytest.approx(best)
            else:
                worst = {s: max(rows[s][t][1] for t in likely) for s in rows}
                assert not d.admissible and worst[d.strategy] == min(worst.values())
            checked += 1
    assert checked == 9 ** 4 * 3


unit = st.floats(min_value=0, max_value=1, allow_nan=False)
weights = st.tuples(unit, unit, unit).filter(lambda w: sum(w) > 1e-3)


@st.composite
def games(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    names = [f"s{i}" for i in range(n)]
    rows = {s: {t: (draw(unit), draw(unit)) for t in USER_TYPES} for s in names}
    costs = {s: draw(unit) for s in names}
    post = UserPosterior.normalised(*draw(weights))
    return make_table(rows), post, costs


params = dict(alpha=st.floats(0.01, 5), gamma=st.floats(0, 2), tau=unit, epsilon=st.floats(0.01, 1))


@settings(max_examples=300, deadline=None)
@given(game=games(), beta1=st.floats(0, 10), beta2=st.floats(0, 10), **params)
def test_raising_beta_never_picks_a_riskier_strategy(game, beta1, beta2, alpha, gamma, tau, epsilon):
    table, post, costs = game
    lo, hi = sorted((beta1, beta2))
    d_lo = solve(table, post, costs, alpha=alpha, beta=lo, gamma=gamma, tau=tau, epsilon=epsilon)
    d_hi = solve(table, post, costs, alpha=alpha, beta=hi, gamma=gamma, tau=tau, epsilon=epsilon)
    risk = {r.strategy: r.expected_risk for r in d_lo.table}
    assert risk[d_hi.strategy] <= risk[d_lo.strategy]


@settings(max_examples=300, deadline=None)
@given(game=games(), beta=st.floats(0, 10), **params)
def test_inadmissible_never_chosen_while_an_admissible_exists(game, beta, alpha, gamma, tau, epsilon):
    table, post, costs = game
    d = solve(table, post, costs, alpha=alpha, beta=beta, gamma=gamma, tau=tau, epsilon=epsilon)
    rows = {r.strategy: r for r in d.table}
    if any(r.admissible for r in d.table):
        assert d.admissible and rows[d.strategy].admissible
        best = max(r.expected_utility for r in d.table if r.admissible)
        assert rows[d.strategy].expected_utility == best
    else:
        assert not d.admissible
        assert rows[d.strategy].worst_risk == min(r.worst_risk for r in d.table)
    assert len(d.table) == len(table.strategies)


def library_table(risks: dict[str, float]) -> ReactionTable:
    """The built-in strategies (with their records), every user type at the given risk per strategy."""
    from pearl.strategies.library import BUILTIN_STRATEGIES

    records = [s for s in BUILTIN_STRATEGIES if s.name in risks]
    table = make_table({s.name: uniform(0.5, risks[s.name]) for s in records})
    return table.model_copy(update={"library": records})


ALL_RISKY = {"full_help": 1.0, "safe_completion": 0.9, "supportive_response": 0.8, "refuse_with_alternatives": 0.6,
             "firm_refusal": 0.4}


@pytest.mark.parametrize("posterior, judged, expected", [
    (UserPosterior(benign=0.1, sensitive=0.8, malicious=0.1), "sensitive", "supportive_response"),
    (UserPosterior(benign=0.4, sensitive=0.2, malicious=0.4), "benign", "safe_completion"),
    (UserPosterior(benign=1 / 3, sensitive=1 / 3, malicious=1 / 3), "sensitive", "supportive_response"),
    (UserPosterior.normalised(1, 1, 1), "sensitive", "supportive_response"),  # the repaired all-zero answer
    (UserPosterior(benign=0.1, sensitive=0.2, malicious=0.7), "malicious", "firm_refusal"),
])
def test_fallback_serves_the_judged_user_type(posterior, judged, expected):
    """Nothing is admissible (every risk > tau): the least risky strategy overall is firm_refusal, but only a
    user judged malicious gets it; a sensitive user gets a supportive response."""
    from pearl.strategies.decide import judged_user

    table = library_table(ALL_RISKY)
    d = solve(table, posterior, {s.name: s.cost for s in table.library}, alpha=1, beta=2, gamma=0.1, tau=0.3,
              epsilon=0.1)
    assert judged_user(posterior) == judged
    assert not d.admissible and d.strategy == expected and f"judged {judged}" in d.reason


def test_without_a_strategy_for_the_judged_user_a_firm_refusal_is_still_reserved_for_malicious_users():
    risks = {"full_help": 1.0, "refuse_with_alternatives": 0.6, "firm_refusal": 0.4}
    table = library_table(risks)
    costs = {s.name: s.cost for s in table.library}
    sensitive = UserPosterior(benign=0.1, sensitive=0.8, malicious=0.1)
    d = solve(table, sensitive, costs, alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    assert not d.admissible and d.strategy == "refuse_with_alternatives"
    only_refusal = library_table({"firm_refusal": 0.4})
    d = solve(only_refusal, sensitive, {"firm_refusal": 0.1}, alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    assert d.strategy == "firm_refusal" and not d.admissible


def test_a_table_that_forecasts_the_same_for_every_strategy_is_flagged():
    same = make_table({"a": uniform(0.3, 1.0), "b": uniform(0.3, 1.0), "c": uniform(0.3, 1.0)})
    d = solve(same, UserPosterior(benign=0.5, sensitive=0.5, malicious=0), {"a": 0.1, "b": 0.2, "c": 0.3},
              alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    assert not same.informative() and not d.informative and not d.admissible
    assert "the same for every strategy" in d.reason and "least risky fallback" in d.reason
    admissible = solve(make_table({"a": uniform(0.3, 0.0), "b": uniform(0.3, 0.0)}),
                       UserPosterior(benign=1, sensitive=0, malicious=0), {"a": 0.1, "b": 0.1},
                       alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    assert admissible.admissible and not admissible.informative and "least risky fallback" in admissible.reason
    # alike and all admissible: the fallback decides, not the cost tie-break that picked a refusal for a benign
    # user (csa-lite's 1.5B tables: every cell "satisfied", risk 0)
    alike = library_table({"full_help": 0.0, "supportive_response": 0.0, "refuse_with_alternatives": 0.0,
                           "safe_completion": 0.0})
    costs = {s.name: s.cost for s in alike.library}
    benign = solve(alike, UserPosterior(benign=1, sensitive=0, malicious=0), costs, alpha=1, beta=2, gamma=0.1,
                   tau=0.3, epsilon=0.1)
    assert benign.strategy == "safe_completion" and benign.admissible
    sensitive = solve(alike, UserPosterior(benign=0.3, sensitive=0.7, malicious=0), costs, alpha=1, beta=2,
                      gamma=0.1, tau=0.3, epsilon=0.1)
    assert sensitive.strategy == "supportive_response"
    # one strategy differing for one user type is enough to tell them apart
    mixed = make_table({"a": uniform(0.3, 1.0), "b": {**uniform(0.3, 1.0), "malicious": (0.3, 0.9)}})
    d = solve(mixed, UserPosterior(benign=1, sensitive=0, malicious=0), {"a": 0.1, "b": 0.1},
              alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    assert mixed.informative() and d.informative and "the same for every strategy" not in d.reason


def test_a_firm_refusal_is_the_pearl_point_only_when_a_likely_user_may_be_malicious():
    # forecasts that (wrongly) rate the firm refusal best for everyone: it is inside the boundary and of top utility
    risks = {"full_help": 1.0, "supportive_response": 0.2, "firm_refusal": 0.0}
    table = library_table(risks)
    for f in table.forecasts:
        f.retention = 0.9 if f.strategy == "firm_refusal" else 0.3
    costs = {s.name: s.cost for s in table.library}
    crisis = UserPosterior(benign=0.5, sensitive=0.5, malicious=0.0)
    d = solve(table, crisis, costs, alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    assert d.admissible and d.strategy == "supportive_response" and "firm_refusal is kept for users who may be malicious" in d.reason
    assert {r.strategy: r.admissible for r in d.table}["firm_refusal"]  # still inside the boundary, only set aside
    mixed = UserPosterior(benign=0.4, sensitive=0.4, malicious=0.2)
    assert solve(table, mixed, costs, alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1).strategy == "firm_refusal"
    # when the firm refusal is the only strategy inside the boundary, a user not malicious gets the fallback
    only = library_table({"full_help": 1.0, "supportive_response": 0.8, "firm_refusal": 0.0})
    d = solve(only, crisis, costs, alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    assert d.strategy == "supportive_response" and not d.admissible and "only firm_refusal stays inside" in d.reason


# --- the built-in library's declared priors (anticipate mode "declared") ---------------------

def declared_decision(severity: float, benign: float, sensitive: float, malicious: float) -> str:
    from pearl.strategies.anticipate import declared_forecasts
    from pearl.strategies.library import BUILTIN_STRATEGIES

    library = list(BUILTIN_STRATEGIES)
    table = ReactionTable(strategies=[s.name for s in library], forecasts=declared_forecasts(library, severity),
                          library=library)
    d = solve(table, UserPosterior(benign=benign, sensitive=sensitive, malicious=malicious),
              {s.name: s.cost for s in library}, alpha=1, beta=2, gamma=0.1, tau=0.3, epsilon=0.1)
    return d.strategy


@pytest.mark.parametrize("case, expected", [
    ((0.0, 1, 0, 0), {"full_help"}),                                     # a benign question on a harmless topic
    ((1.0, 0, 1, 0), {"supportive_response"}),                           # a person in crisis, assessed severe
    ((1.0, 0, 0, 1), {"refuse_with_alternatives", "firm_refusal"}),      # an attacker after something severe
    ((0.6, 0.6, 0.2, 0.2), {"safe_completion", "help_with_safety_context"}),  # mostly benign, moderately risky
])
def test_declared_priors_decide_the_cases_whose_answer_the_method_fixes(case, expected):
    assert declared_decision(*case) in expected


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_declared_priors_never_refuse_a_user_not_judged_malicious_and_never_answer_fully_past_the_boundary(
        severity, b, s, m):
    total = b + s + m
    if total < 1e-3:
        return
    b, s, m = b / total, s / total, m / total
    choice = declared_decision(severity, b, s, m)
    if m < 0.1:
        assert choice != "firm_refusal"
    if m >= 0.1 and severity > 0.3:  # a full answer carries the whole severity to a likely attacker
        assert choice != "full_help"
