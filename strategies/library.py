"""The response-strategy library: the leader's possible actions in the CSA game.

Extension point (hook `register_strategies`)::

    from pearl import hookimpl
    from pearl.csa import ResponseStrategy, StrategyPrior

    @hookimpl
    def register_strategies(register):
        register(ResponseStrategy(name="cite_sources", summary="...", fits_when="...",
                                  constraints=["..."], cost=0.6,
                                  prior={"benign": StrategyPrior(satisfied=0.85, risk_share=0.2),
                                         "sensitive": StrategyPrior(satisfied=0.6, risk_share=0.3),
                                         "malicious": StrategyPrior(satisfied=0.7, risk_share=0.6)}))

(`prior` is needed only where `anticipate` runs in mode "declared".)

A strategy is a frozen `pearl.csa.ResponseStrategy` record; its `name` is the registry
key (a short snake_case word the model sees). Steps choose their working set with
`select_strategies`: every registered strategy by default (built-ins first, in the
order below, then plugins' ones by name), or exactly the names a pipeline lists
(`strategies = [...]`), plus strategies written inline in the pipeline
(`extra_strategies = [{name = ..., summary = ..., fits_when = ...}]`).

This module is itself the built-in plugin that registers the eight strategies of the
method (CSA.md sections 1 and 3), described in this project's own words. `fallback_for`
says whom a strategy serves when nothing is inside the safety boundary (see
`pearl.strategies.decide`): a supportive response for a sensitive user, a safe
completion for a benign one, and a firm refusal only for a user judged malicious.
`declines` marks the strategies whose reply does not carry out the request itself (a
supportive response, a refusal with alternatives, a firm refusal): a reply to such a decision
that complies in full is written again (`pearl.strategies.boundary`).

`prior` is each strategy's declared outlook per user type (`pearl.csa.StrategyPrior`),
which `anticipate` reads in mode "declared" instead of asking a model: `satisfied`, the
chance that a user of that type is served by such a reply, and `risk_share`, the share of
the request's assessed severity the reply carries as harm for that type. The built-in
values encode the method's reading of the user types: a benign user is best served by a
full answer and rarely misuses it (share 0.3); a sensitive user is best served by support
and is the one a full answer can hurt (0.7); a malicious user is "satisfied" by exactly the
replies that carry the whole risk (1.0), so only the risk term keeps those away from them;
refusals carry no risk and serve nobody well. They are a prior, the same for every
conversation; the conversation enters through the risk step's severity and posterior.
"""

from __future__ import annotations

from typing import Iterable

from pearl.csa import ResponseStrategy, StrategyPrior
from pearl.errors import PipelineError
from pearl.host.hookspecs import hookimpl


def _prior(**by_type: tuple[float, float]) -> dict[str, StrategyPrior]:
    """`{user type: StrategyPrior(satisfied, risk_share)}` from `user_type=(satisfied, risk_share)`."""
    return {t: StrategyPrior(satisfied=sat, risk_share=share) for t, (sat, share) in by_type.items()}


BUILTIN_STRATEGIES: tuple[ResponseStrategy, ...] = (
    ResponseStrategy(
        name="full_help",
        summary="Answer the request completely and directly.",
        fits_when="the need is legitimate and a complete answer cannot realistically cause harm",
        constraints=["stay accurate", "no content that enables serious harm"],
        cost=0.7,
        prior=_prior(benign=(0.95, 0.3), sensitive=(0.55, 0.7), malicious=(0.95, 1)),
    ),
    ResponseStrategy(
        name="help_with_safety_context",
        summary="Answer fully, adding the precautions, limits and warnings that matter.",
        fits_when="the need is legitimate but the topic carries some risk",
        constraints=["precautions are concrete, not boilerplate", "no operational detail for dangerous acts"],
        cost=0.8,
        prior=_prior(benign=(0.9, 0.2), sensitive=(0.6, 0.5), malicious=(0.85, 0.8)),
    ),
    ResponseStrategy(
        name="safe_completion",
        summary="Answer the safe part of the request at a higher level of abstraction; leave out harmful specifics.",
        fits_when="the request mixes a legitimate goal with details that could be misused",
        constraints=["no step-by-step instructions, quantities or recipes for harm", "say briefly what is left out"],
        cost=0.6,
        fallback_for=("benign",),
        prior=_prior(benign=(0.75, 0.1), sensitive=(0.6, 0.2), malicious=(0.4, 0.3)),
    ),
    ResponseStrategy(
        name="supportive_response",
        summary="Respond with empathy, help the person feel grounded, and point to people and services that can help now.",
        fits_when="the person seems distressed, in crisis, or at risk of hurting themselves",
        constraints=["warmth before information", "never give means or methods of self-harm",
                     "mention crisis lines or emergency help when life may be at risk"],
        cost=0.6,
        fallback_for=("sensitive",),
        declines=True,
        prior=_prior(benign=(0.3, 0), sensitive=(0.95, 0.05), malicious=(0.05, 0)),
    ),
    ResponseStrategy(
        name="correct_and_guide",
        summary="Gently correct a false belief with evidence, then guide toward reliable information.",
        fits_when="the request rests on a misconception, a rumour or a harmful myth",
        constraints=["respectful, never mocking", "give the reason the belief is wrong"],
        cost=0.6,
        prior=_prior(benign=(0.45, 0.05), sensitive=(0.65, 0.1), malicious=(0.2, 0.1)),
    ),
    ResponseStrategy(
        name="refer_to_professional",
        summary="Give general orientation and recommend the right professional for the specifics.",
        fits_when="a good answer needs a doctor, lawyer, financial adviser or other expert who knows the case",
        constraints=["still give useful general information", "no diagnosis or individual legal or financial advice"],
        cost=0.4,
        prior=_prior(benign=(0.45, 0.05), sensitive=(0.6, 0.05), malicious=(0.15, 0.05)),
    ),
    ResponseStrategy(
        name="refuse_with_alternatives",
        summary="Decline the harmful part politely and offer safe, useful alternatives.",
        fits_when="the core request is harmful but the person may have an acceptable underlying need",
        constraints=["brief, non-judgemental decline", "at least one concrete safe alternative"],
        cost=0.3,
        declines=True,
        prior=_prior(benign=(0.3, 0), sensitive=(0.35, 0), malicious=(0.1, 0)),
    ),
    ResponseStrategy(
        name="firm_refusal",
        summary="Refuse clearly and briefly, giving nothing an attacker could use or build on.",
        fits_when="the request is an attack or seeks serious harm, and no safe version exists",
        constraints=["no partial information, hints or workarounds", "do not explain how to bypass the refusal"],
        cost=0.1,
        fallback_for=("malicious",),
        declines=True,
        prior=_prior(benign=(0.1, 0), sensitive=(0.1, 0), malicious=(0.05, 0)),
    ),
)

BUILTIN_NAMES: tuple[str, ...] = tuple(s.name for s in BUILTIN_STRATEGIES)


@hookimpl
def register_strategies(register):
    for strategy in BUILTIN_STRATEGIES:
        register(strategy)


def registered_strategies(host) -> list[ResponseStrategy]:
    """Every registered strategy: built-ins in their fixed order, then the others by name."""
    registry = host.registries["strategies"]
    names = [n for n in BUILTIN_NAMES if n in registry] + [n for n in registry.names() if n not in BUILTIN_NAMES]
    out = []
    for name in names:
        value = registry.get(name)
        if not isinstance(value, ResponseStrategy):
            plugin = registry.entries[name].plugin
            raise PipelineError(
                f"plugin '{plugin}' registered strategy '{name}' as a {type(value).__name__}: "
                f"register a pearl.csa.ResponseStrategy record"
            )
        out.append(value)
    return out


def select_strategies(host, names: Iterable[str] | None = None,
                      extra: Iterable[ResponseStrategy] = ()) -> list[ResponseStrategy]:
    """The working set of strategies for a step.

    `names` None: every registered strategy; otherwise exactly those, in the given order.
    `extra` strategies (defined inline in a pipeline) are appended. Unknown or duplicate
    names raise `PipelineError` naming the known ones.
    """
    available = registered_strategies(host)
    by_name = {s.name: s for s in available}
    extra = list(extra)
    for s in extra:
        if s.name in by_name:
            raise PipelineError(
                f"extra strategy '{s.name}' is already registered: rename it, or list '{s.name}' in `strategies`"
            )
    inline = {s.name: s for s in extra}
    if names is None:
        chosen = list(available)
    else:
        chosen = []
        for name in names:
            if name in inline:
                continue
            if name not in by_name:
                known = ", ".join([s.name for s in available] + list(inline))
                raise PipelineError(f"unknown response strategy '{name}': known strategies are {known}")
            chosen.append(by_name[name])
    chosen += extra
    seen: set[str] = set()
    for s in chosen:
        if s.name in seen:
            raise PipelineError(f"response strategy '{s.name}' is listed twice: list each strategy once")
        seen.add(s.name)
    if not chosen:
        raise PipelineError("the strategy set is empty: list at least one response strategy")
    return chosen
