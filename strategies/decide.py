"""The Pearl-Point decision (CSA.md section 1): the `decide` step -> slot `decision`.

Plain Python, no model. The leader scores every strategy s by its expected utility
under the posterior p over user types θ:

    U(s) = Σ_θ p(θ) · (α·Retention(s, θ) − β·Risk(s, θ)) − γ·Cost(s)

Safety boundary: s is admissible iff Risk(s, θ) ≤ τ for every θ with p(θ) ≥ ε.
The Pearl Point is the admissible strategy of highest U; ties go to the lower expected
risk, then the lower cost, then the earlier strategy in the table. A strategy the library
keeps for malicious users (`fallback_for == ["malicious"]`, the built-in `firm_refusal`) is
a candidate only when malicious is a likely type (p ≥ ε): a firm refusal is for a user who
may mean harm, whatever forecasts say (the 1.5B model's `rank` forecasts made it the Pearl
Point for a crisis message). When only such strategies are admissible and no likely user
is malicious, the fallback below decides.

If no strategy is admissible, the fallback follows the method: the user is judged to be
the most probable type (malicious only when strictly the most probable; ties go to
sensitive, then benign), and the candidates are the strategies whose `fallback_for`
names that type (built-ins: `supportive_response` for a sensitive user, `safe_completion`
for a benign one, `firm_refusal` for a malicious one). With none in the table, every
strategy except those reserved for malicious users (`fallback_for == ("malicious",)`)
is a candidate, so a firm refusal is never the answer to a user not judged malicious.
Among the candidates the least risky is chosen (lowest worst-case risk over the likely
user types, then lowest expected risk, then highest U, then table order), and the
decision is flagged `admissible=False`.

A table whose forecasts are the same for every strategy (`ReactionTable.informative`) is
flagged `informative=False` and decided by the fallback rule above, whether or not its
strategies are admissible: the 1.5B default model answers one pattern for the whole table
often, and among strategies forecast alike the tie-breaks would pick the lowest cost, which
is a refusal (`csa-lite` declined 3 of 4 safe test prompts that way).

Comparisons use exact rational arithmetic on the float inputs (`fractions.Fraction`),
so the choice is deterministic and monotone: raising β never selects a strategy of
higher expected risk.
"""

from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field

from pearl.csa import USER_TYPES, Decision, ReactionTable, RiskAssessment, UserPosterior, UserType, UtilityRow
from pearl.errors import StepError
from pearl.host.hookspecs import hookimpl
from pearl.host.step import Step


class DecideParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(default=1.0, ge=0, description="weight of retention (expected satisfaction)")
    beta: float = Field(default=2.0, ge=0, description="weight of harm risk")
    gamma: float = Field(default=0.1, ge=0, description="weight of inference cost")
    tau: float = Field(default=0.3, ge=0, le=1, description="safety boundary: highest risk allowed for a likely user type")
    epsilon: float = Field(default=0.1, gt=0, le=1, description="a user type is likely when its posterior is >= epsilon")


def solve(table: ReactionTable, posterior: UserPosterior, costs: dict[str, float], *, alpha: float, beta: float,
          gamma: float, tau: float, epsilon: float) -> Decision:
    """The leader's choice over `table.strategies` (see the module docstring)."""
    if not table.strategies:
        raise ValueError("the reaction table has no strategies")
    p = {t: Fraction(v) for t, v in posterior.as_dict().items()}
    likely = [t for t in USER_TYPES if posterior.as_dict()[t] >= epsilon]
    a, b, g, limit = Fraction(alpha), Fraction(beta), Fraction(gamma), Fraction(tau)
    exact: dict[str, tuple[Fraction, Fraction, Fraction, Fraction, Fraction]] = {}
    rows: list[UtilityRow] = []
    for name in table.strategies:
        f = {t: table.get(name, t) for t in USER_TYPES}
        retention = sum(p[t] * Fraction(f[t].retention) for t in USER_TYPES)
        risk = sum(p[t] * Fraction(f[t].risk) for t in USER_TYPES)
        cost = Fraction(costs[name])
        worst = max((Fraction(f[t].risk) for t in likely), default=Fraction(0))
        utility = a * retention - b * risk - g * cost
        exact[name] = (utility, retention, risk, worst, cost)
        rows.append(UtilityRow(strategy=name, expected_utility=float(utility), expected_retention=float(retention),
                               expected_risk=float(risk), worst_risk=float(worst), cost=float(cost),
                               admissible=worst <= limit))
    order = {name: i for i, name in enumerate(table.strategies)}
    admissible = [r.strategy for r in rows if r.admissible]
    boundary = f"risk <= {tau:g} for every user type with posterior >= {epsilon:g} ({', '.join(likely) or 'none'})"
    kept = [] if "malicious" in likely else [n for n in admissible if reserved_for_malicious(table, n)]
    open_ = [n for n in admissible if n not in kept]
    informative = table.informative()
    if open_ and informative:
        best = min(open_, key=lambda n: (-exact[n][0], exact[n][2], exact[n][4], order[n]))
        reason = (f"'{best}' has the highest expected utility ({float(exact[best][0]):.3f}) of the "
                  f"{len(open_)} of {len(rows)} strategies inside the safety boundary ({boundary})")
        if kept:
            reason += f"; {', '.join(kept)} is kept for users who may be malicious, and none is likely here"
        ok = True
    else:
        judged = judged_user(posterior)
        candidates = fallback_candidates(table, judged)
        best = min(candidates, key=lambda n: (exact[n][3], exact[n][2], -exact[n][0], order[n]))
        if not informative:
            why = "the forecasts are the same for every strategy, so they tell the strategies apart on nothing; " + (
                f"{len(admissible)} of {len(rows)} stay inside the safety boundary ({boundary})" if admissible
                else f"no strategy stays inside the safety boundary ({boundary})")
        elif kept:
            why = (f"only {', '.join(kept)} stays inside the safety boundary ({boundary}), and it is kept for users "
                   f"who may be malicious")
        else:
            why = f"no strategy stays inside the safety boundary ({boundary})"
        reason = (f"{why}; the user is judged {judged}, and '{best}' is the least risky fallback for a {judged} user "
                  f"(worst risk {float(exact[best][3]):.2f}, expected risk {float(exact[best][2]):.2f})")
        ok = best in admissible
    if table.source in ("declared", "picked"):
        reason += "; the forecasts are the strategies' declared priors scaled by the assessed severity"
    if table.source == "picked":
        picked = ", ".join(f"{t}: {s}" for t, s in table.picks.items()) or "none"
        reason += f", with the strategy the model picked per user type ({picked}) raised"
    return Decision(strategy=best, admissible=ok, reason=reason, table=rows, alpha=alpha, beta=beta, gamma=gamma,
                    tau=tau, epsilon=epsilon, chosen=table.strategy(best), informative=informative)


def reserved_for_malicious(table: ReactionTable, name: str) -> bool:
    """True for a strategy the library keeps for malicious users only (`fallback_for == ["malicious"]`)."""
    record = table.strategy(name)
    return record is not None and record.for_malicious_only


TIE = 1e-9  # probabilities closer than this are a tie (a normalised posterior is not exact)


def judged_user(posterior: UserPosterior) -> UserType:
    """The most probable user type; malicious only when strictly the most probable, ties go to
    sensitive, then benign."""
    p = posterior.as_dict()
    if p["malicious"] > max(p["benign"], p["sensitive"]) + TIE:
        return "malicious"
    return "sensitive" if p["sensitive"] + TIE >= p["benign"] else "benign"


def fallback_candidates(table: ReactionTable, judged: UserType) -> list[str]:
    """The strategies the fallback may choose for a `judged` user (see the module docstring)."""
    records = {name: table.strategy(name) for name in table.strategies}
    serving = [n for n, r in records.items() if r is not None and judged in r.fallback_for]
    if serving:
        return serving
    if judged == "malicious":
        return list(table.strategies)
    open_ = [n for n, r in records.items() if r is None or not r.for_malicious_only]
    return open_ or list(table.strategies)


class DecideStep(Step):
    name = "decide"
    description = "Stackelberg leader: the admissible strategy of highest expected utility (the Pearl Point)"
    Params = DecideParams
    uses_lm = False
    inputs = {"assessment": RiskAssessment, "reactions": ReactionTable}
    output = ("decision", Decision)

    def run(self, state) -> Decision:
        table: ReactionTable = state.get("reactions")  # type: ignore[assignment]
        assessment: RiskAssessment = state.get("assessment")  # type: ignore[assignment]
        costs = {s.name: s.cost for s in table.library}
        missing = [n for n in table.strategies if n not in costs]
        if missing:
            raise StepError(self.context.step_id, f"the reaction table lacks the records of {', '.join(missing)}: "
                                                  f"produce it with the 'anticipate' step")
        q = self.params
        return solve(table, assessment.posterior, costs, alpha=q.alpha, beta=q.beta, gamma=q.gamma, tau=q.tau,
                     epsilon=q.epsilon)


@hookimpl
def register_steps(register):
    register(DecideStep)
