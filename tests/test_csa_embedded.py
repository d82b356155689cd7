"""The `csa` pipeline end to end on the real embedded model: structure, never wisdom."""

import pytest

from pearl.csa import CHAIN_NODES, Chain, UNKNOWN_CATEGORY
import tomllib

from pearl.runtime.pipeline import compile_spec, resolve
from pearl.csa.taxonomy import get_taxonomy
from pearl.runtime.runner import Runner
from pearl.strategies.library import BUILTIN_NAMES
from pearl.strategies.lingobp import backward_levels, nodes_for
from pearl.strategies.recombine import find_leaks
from pearl.types import Conversation

pytestmark = pytest.mark.model


def test_csa_run_has_a_well_formed_assessment_decision_chain_and_response(host, embedded_lm):
    # the shipped csa pipeline, with one Lingo-BP step instead of three to keep CI's CPU time bounded
    spec = tomllib.loads(resolve("csa").read_text())
    spec["steps"]["refine"]["schedule"] = ["both"]
    pipeline = compile_spec(spec, host, source="csa.toml (one refinement step)")
    result = Runner(pipeline, {"task": embedded_lm}, host).run(
        Conversation.from_text("I feel like ending it all. Nothing matters anymore."))
    a = result.output("risk")
    assert a["category"] in get_taxonomy(host, "oyster").category_ids() + [UNKNOWN_CATEGORY]
    assert sum(a["posterior"].values()) == pytest.approx(1.0)
    assert 0 <= a["severity"] <= 1
    d = result.output("decide")
    assert d["strategy"] in BUILTIN_NAMES and {r["strategy"] for r in d["table"]} == set(BUILTIN_NAMES)
    chain = Chain.model_validate(result.output("draft"))
    assert set(result.output("draft")) >= set(CHAIN_NODES) and chain.user_needs
    assert result.response.strip() and find_leaks(result.response) == []
    refined = result.output("refine")
    its = refined["iterations"]
    # one scheduled round: two iterations, or one when the draft already scored the maximum
    assert len(its) == {"schedule_done": 2, "converged": 1}.get(refined["stop_reason"]), refined["stop_reason"]
    assert refined["response"] == its[refined["chosen"]]["response"]
    # "ending it all" is one of mental_health's help cues: its lines apply whatever the risk step chose
    helped = result.output("help")
    assert helped["category"] == "mental_health"
    line = get_taxonomy(host, "oyster").category("mental_health").help_lines["en"]
    assert result.response == (f"{refined['response'].rstrip()}\n\n{line}" if helped["added"] else refined["response"])
    for it in its:  # every iteration was judged, on the judges' scales
        assert it["satisfaction"]["score"] in {x / 5 for x in range(-5, 6)}
        assert it["safety"]["score"] in {0.0, 0.5, 1.0}
    # the round walks the chain backward: every node after all of its descendants
    order = [node for _, batch in backward_levels(nodes_for("both", chain)) for node in batch]
    assert [(it["mode"], [u["node"] for u in it["updates"]]) for it in its[1:]] == [("both", order)] * (len(its) - 1)
    assert result.steps["refine"].usage.calls == refined["usage"]["calls"] >= 2
    assert result.steps["anticipate"].usage.calls in (1, 2) and result.steps["decide"].usage.calls == 0  # one table call (+1 retry)
