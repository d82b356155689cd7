"""Compiling steps on DSPy's DummyLM (a scripted test double): save, manifest, load, use, refuse."""

import json

import dspy
import pytest
from dspy.utils import DummyLM
from typer.testing import CliRunner

from pearl.host.backend import Backend
from pearl.runtime.compiled import apply_compiled, load_into_step, read_manifest, read_stamp, signature_fingerprint
from pearl.errors import InputError, PipelineError
from pearl.host.hookspecs import hookimpl
from pearl.host.judge import Judge
from pearl.optimization.metrics import MatchMetric
from pearl.optimization.optimize import Budget, PipelineProgram, optimize
from pearl.runtime.pipeline import load
from pearl.runtime.runner import Runner
from pearl.host.step import StepContext
from pearl.strategies.minimal import ScreenSignature, ScreenStep
from pearl.types import Conversation

TRAIN_TEXTS = {"how do I bake bread": "low", "how to pick a lock": "high", "tell me about stocks": "none",
               "my cat is sick": "medium"}
VAL_TEXTS = {"is coffee bad for me": "low", "how to make a bomb": "medium"}  # the script gets the bomb wrong


def answer(risk, topic):
    return {"topic": topic, "user_need": "help", "risk": risk, "caution": "", "response": "A reply.",
            "proposed_instruction": "Assess the request with care.",
            "new_instruction": "Judge how risky a careless answer would be, then fill every field."}


def screen_answers(n=None):
    """Scripted answers keyed by the conversation text in the prompt ('' answers anything else)."""
    script = {text: answer(risk, f"topic {i}") for i, (text, risk) in enumerate({**TRAIN_TEXTS, **VAL_TEXTS}.items())}
    script[""] = answer("none", "anything")
    return script


def example(text, risk):
    return dspy.Example(conversation=Conversation.from_text(text), id=text[:12], risk=risk).with_inputs("conversation")


TRAIN = [example(t, r) for t, r in TRAIN_TEXTS.items()]
VAL = [example("is coffee bad for me", "low"), example("how to make a bomb", "high")]


@pytest.fixture
def compiled_dir(host, tmp_path):
    lm = DummyLM(screen_answers(), adapter=dspy.JSONAdapter())
    report = optimize(load("minimal", host), ["screen"], "bootstrap", MatchMetric(), TRAIN, VAL, tmp_path / "compiled",
                      task_lm=lm, budget=Budget(max_demos=2))
    return tmp_path / "compiled", report


def test_bootstrap_compile_writes_state_and_manifest(compiled_dir, host):
    out, report = compiled_dir
    manifest = read_manifest(out)
    entry = manifest.steps["screen"]
    assert manifest.pipeline == "minimal" and entry.use == "screen" and entry.optimizer == "bootstrap"
    assert entry.metric == "match" and entry.demos == report.demos["screen"] == 2
    assert entry.score_before == report.score_before and entry.score_after == report.score_after
    assert {"python", "dspy", "pearlpoint", "pydantic"} <= set(manifest.versions)
    assert manifest.created.startswith("20")
    stamp = read_stamp(out / "screen.json")
    fresh = load("minimal", host).steps["screen"]
    assert stamp.use == "screen" and stamp.fingerprint == signature_fingerprint(fresh.program) == entry.fingerprint
    # evaluations were written as they went, one row per valset example
    rows = [json.loads(line) for line in (out / "screen.before.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [e.id for e in VAL]


def test_compiled_state_round_trips_and_the_pipeline_prompts_with_its_demos(compiled_dir, host, tmp_path):
    out, _ = compiled_dir
    saved = json.loads((out / "screen.json").read_text())
    demo_texts = [d["conversation"] for d in saved["demos"]]
    assert len(demo_texts) == 2 and all(t.startswith("user: ") for t in demo_texts)

    pipeline_file = tmp_path / "compiled_minimal.toml"
    pipeline_file.write_text(
        'name = "minimal-compiled"\nanswer = "response"\n'
        '[steps.screen]\nuse = "screen"\nprogram = "compiled/screen.json"\n'  # relative to the TOML file
        '[steps.respond]\nuse = "respond"\nafter = ["screen"]\n'
    )
    pipeline = load(str(pipeline_file), host)
    assert [d["conversation"] for d in pipeline.steps["screen"].program.demos] == demo_texts
    assert pipeline.steps["screen"].program.dump_state()["demos"] == saved["demos"]

    lm = DummyLM(screen_answers(), adapter=dspy.JSONAdapter())
    Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("Can I freeze cooked rice?"))
    screen_prompt = json.dumps(lm.history[0]["messages"])
    assert all(text.removeprefix("user: ") in screen_prompt for text in demo_texts)


def test_run_with_compiled_folder_applies_every_manifest_step(compiled_dir, host):
    out, _ = compiled_dir
    pipeline = load("minimal", host)
    assert pipeline.steps["screen"].program.demos == []
    assert apply_compiled(pipeline, out) == ["screen"]
    assert len(pipeline.steps["screen"].program.demos) == 2


def test_program_for_another_step_is_refused_naming_both(compiled_dir, host, tmp_path):
    out, _ = compiled_dir
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'name = "bad"\n[steps.screen]\nuse = "screen"\n'
        f'[steps.respond]\nuse = "respond"\nafter = ["screen"]\nprogram = "{out / "screen.json"}"\n'
    )
    with pytest.raises(PipelineError) as err:
        load(str(bad), host)
    message = str(err.value)
    assert "step 'respond' runs 'respond'" in message and "compiled for step 'screen' running 'screen'" in message


class ScreenWithSeverity(dspy.Signature):
    """A changed screen: one more output field."""

    conversation: str = dspy.InputField()
    topic: str = dspy.OutputField()
    user_need: str = dspy.OutputField()
    risk: str = dspy.OutputField()
    caution: str = dspy.OutputField()
    severity: float = dspy.OutputField()


def test_program_for_another_signature_is_refused_naming_both(compiled_dir, host):
    out, _ = compiled_dir
    step = ScreenStep(ScreenStep.Params(), StepContext(step_id="screen", host=host))
    step.program = dspy.Predict(ScreenWithSeverity)
    with pytest.raises(PipelineError) as err:
        load_into_step(step, out / "screen.json", where="p.toml", step_id="screen")
    stamp = read_stamp(out / "screen.json")
    message = str(err.value)
    assert signature_fingerprint(step.program) in message and stamp.fingerprint in message
    assert "re-run `pearl optimize --step screen`" in message


def test_unstamped_dspy_state_is_still_checked(host, tmp_path):
    from pearl.strategies.minimal import RespondSignature

    plain = tmp_path / "plain.json"
    dspy.Predict(RespondSignature).save(str(plain))
    step = ScreenStep(ScreenStep.Params(), StepContext(step_id="screen", host=host))
    with pytest.raises(PipelineError, match="has 5 fields but .* saved 4"):
        load_into_step(step, plain, where="p.toml", step_id="screen")
    good = tmp_path / "good.json"
    donor = dspy.Predict(ScreenSignature)
    donor.signature = donor.signature.with_instructions("Screen the request like a careful librarian.")
    donor.save(str(good))
    assert load_into_step(step, good, where="p.toml", step_id="screen") is None
    assert step.program.signature.instructions == "Screen the request like a careful librarian."
    with pytest.raises(PipelineError, match="does not exist"):
        load_into_step(step, tmp_path / "nope.json", where="p.toml", step_id="screen")


def test_gepa_instruction_reaches_the_pipeline_prompt(host, tmp_path):
    lm = DummyLM(screen_answers(), adapter=dspy.JSONAdapter())
    out = tmp_path / "gepa"
    report = optimize(load("minimal", host), ["screen"], "gepa", MatchMetric(), TRAIN, VAL, out, task_lm=lm,
                      budget=Budget(max_metric_calls=10))
    instructions = json.loads((out / "screen.json").read_text())["signature"]["instructions"]
    assert read_manifest(out).steps["screen"].optimizer == "gepa" and report.settings["max_metric_calls"] == 10
    pipeline = load("minimal", host)
    apply_compiled(pipeline, out)
    run_lm = DummyLM(screen_answers(), adapter=dspy.JSONAdapter())
    Runner(pipeline, {"task": run_lm}, host).run(Conversation.from_text("hello"))
    assert instructions in run_lm.history[0]["messages"][0]["content"]


def test_mipro_runs_budget_capped(host, tmp_path):
    pytest.importorskip("optuna")
    lm = DummyLM(screen_answers(), adapter=dspy.JSONAdapter())
    report = optimize(load("minimal", host), ["screen"], "mipro", MatchMetric(), TRAIN, VAL, tmp_path / "m",
                      task_lm=lm, budget=Budget(num_trials=2, num_candidates=2))
    assert report.settings["num_trials"] == 2
    assert read_manifest(tmp_path / "m").steps["screen"].optimizer == "mipro"


def test_upstream_steps_are_cached_and_downstream_targets_see_them(host):
    pipeline = load("minimal", host)
    lm = DummyLM(screen_answers(), adapter=dspy.JSONAdapter())
    module = PipelineProgram(pipeline, ["respond"], {"task": lm}, score_answer=True)
    assert module._shared.before == ["screen"] and module._shared.live == ["respond"]
    assert [name for name, _ in module.named_predictors()] == ["programs['respond']"]
    with dspy.context(lm=lm):
        module.prepare([e.conversation for e in TRAIN[:2]])
        calls = len(lm.history)
        pred = module(conversation=TRAIN[0].conversation)
    assert len(lm.history) == calls + 1  # only the target ran; the screen came from the cache
    assert pred.response == "A reply." and pred.screening.topic == "topic 0"


def test_bad_targets_and_budgets_are_clear_errors(host):
    pipeline = load("minimal", host)
    with pytest.raises(InputError, match="no step 'risk'"):
        PipelineProgram(pipeline, ["risk"], {"task": None}, score_answer=False)
    with pytest.raises(InputError, match="GEPA needs a budget"):
        Budget().check("gepa")
    with pytest.raises(InputError, match="no --auto"):
        Budget(auto="light").check("bootstrap")


class DummyBackend(Backend):
    """Test double: a backend whose LM is a scripted DummyLM."""

    name = "test-dummy"
    description = "scripted DummyLM (tests)"

    def create(self, settings):
        return DummyLM(screen_answers(), adapter=dspy.JSONAdapter())


class DummyBackendPlugin:
    @hookimpl
    def register_backends(self, register):
        register(DummyBackend)


@pytest.mark.parametrize("optimizer, budget", [
    ("bootstrap", ["--max-metric-calls", "3"]),
    ("mipro", ["--num-trials", "1"]),
    ("gepa", ["--max-metric-calls", "6"]),
])
def test_cli_optimize_then_run_compiled(host, tmp_path, optimizer, budget):
    from pearl.cli import app

    host.register(DummyBackendPlugin(), name="tests.dummy-backend")
    if optimizer == "mipro":
        pytest.importorskip("optuna")
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps({"id": f"e{i}", "prompt": e.conversation.last_user_message,
                                          "labels": {"risk": e.risk}}) for i, e in enumerate(TRAIN)) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["optimize", "--pipeline", "minimal", "--step", "screen", "--optimizer", optimizer,
                                      "--trainset", str(data), "--valset", str(data), "--task-backend", "test-dummy",
                                      "--out", str(out), *budget])
    assert result.exit_code == 0, result.output
    assert "before" in result.output and "after" in result.output and f"{optimizer}" in result.output
    assert read_manifest(out).steps["screen"].metric == "match"  # the screen has no category/level: field match
    ran = CliRunner().invoke(app, ["run", "--compiled", str(out), "--backend", "test-dummy", "--json", "hello"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["pipeline"] == "minimal"
    batch_in, batch_out = tmp_path / "in.jsonl", tmp_path / "results.jsonl"
    batch_in.write_text(json.dumps("hello") + "\n")
    ran = CliRunner().invoke(app, ["run", "--compiled", str(out), "--backend", "test-dummy", "--batch", str(batch_in),
                                   "--out", str(batch_out)])
    assert ran.exit_code == 0, ran.output
    (record,) = [json.loads(line) for line in batch_out.read_text().splitlines()]
    assert record["ok"] and record["result"]["pipeline"] == "minimal"  # --batch loads the compiled folder too


def test_cli_errors_are_one_line(tmp_path, run_cli):
    def pearl(*args):
        return run_cli(list(args))

    proc = pearl("optimize", "--pipeline", "minimal", "--step", "nonesuch", "--trainset", "risk-train")
    assert proc.returncode == 2 and "no step 'nonesuch'" in proc.stderr and "Traceback" not in proc.stderr
    proc = pearl("optimize", "--pipeline", "minimal", "--step", "screen", "--trainset", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 2 and "neither a file nor a shipped set" in proc.stderr
    proc = pearl("optimize", "--pipeline", "minimal", "--step", "screen", "--trainset", "risk-train",
                 "--optimizer", "gepa")
    assert proc.returncode == 2 and "GEPA needs a budget" in proc.stderr
    proc = pearl("run", "--compiled", str(tmp_path), "hi")
    assert proc.returncode == 2 and "is not a compiled folder" in proc.stderr


class FixedJudge(Judge):
    """Test double base: a judge with a scripted verdict (no LM)."""

    uses_lm = False
    score = 1.0
    label = "fine"

    def judge(self, conversation, response, *, guideline=None, category=None):
        from pearl.host.judge import Judgement

        return Judgement(judge=self.name, score=self.score, label=self.label,
                         suggestion=f"{self.name}: say more about '{conversation.last_user_message}'")


class FakeSatisfaction(FixedJudge):
    name = "satisfaction"
    score = 0.4


class FakeSafety(FixedJudge):
    name = "safety"
    score = 1.0


class FakeJudgesPlugin:
    @hookimpl
    def register_judges(self, register):
        register(FakeSatisfaction)
        register(FakeSafety)


@pytest.fixture
def judged_host():
    """A host whose `satisfaction`/`safety` judges are the scripted doubles above."""
    from pearl.host.manager import Host, reset_host

    h = Host(third_party=False, exclude=("pearl.strategies.judges",))
    h.register(DummyBackendPlugin(), name="tests.dummy-backend")
    h.register(FakeJudgesPlugin(), name="tests.fake-judges")
    reset_host(h)
    yield h
    reset_host(None)


def test_step_all_is_judged_on_the_answer_with_the_constructive_score(judged_host, tmp_path):
    from pearl.cli import app
    from pearl.csa.scoring import constructive_score

    host = judged_host
    data = tmp_path / "t.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": t}) for t in TRAIN_TEXTS) + "\n")
    out = tmp_path / "all"
    result = CliRunner().invoke(app, ["optimize", "--pipeline", "minimal", "--step", "all", "--optimizer", "gepa",
                                      "--trainset", str(data), "--task-backend", "test-dummy", "--out", str(out),
                                      "--max-metric-calls", "8", "--beta", "3"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert set(manifest.steps) == {"screen", "respond"}
    entry = manifest.steps["respond"]
    assert entry.metric == "constructive"
    assert entry.score_before == pytest.approx(constructive_score(0.4, 1.0, beta=3))
    rows = [json.loads(line) for line in (out / "screen+respond.before.jsonl").read_text().splitlines()]
    assert "say more about 'how do I bake bread'" in rows[0]["feedback"]
    pipeline = load("minimal", host)
    assert apply_compiled(pipeline, out) == ["screen", "respond"]


def test_compiled_folder_remembers_its_pipeline_file(compiled_dir, tmp_path):
    from pearl.runtime.compiled import CompiledManifest, manifest_pipeline, write_manifest

    out, _ = compiled_dir
    assert manifest_pipeline(out).endswith("minimal.toml")
    own = tmp_path / "mine.toml"
    own.write_text('name = "minimal"\n')
    write_manifest(out, CompiledManifest(pipeline="minimal", pipeline_source=str(own)))
    assert manifest_pipeline(out) == str(own)  # same name as a shipped one, but this file
    own.unlink()
    assert manifest_pipeline(out) == "minimal"
