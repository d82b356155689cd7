"""Attribute and event names Pearlpoint's spans carry, in one place.

Three vocabularies side by side, so each kind of backend renders the tree:

- OpenTelemetry GenAI semantic conventions (`gen_ai.*`, `server.*`, `error.type`) for
  Jaeger, Langfuse and any OTel-native tool. The names follow the GenAI conventions
  (semantic-conventions-genai); they are spelled here rather than imported from
  `opentelemetry.semconv._incubating`, whose GenAI constants are marked deprecated there
  after the move to their own repository.
- OpenInference (`openinference.span.kind`, `input.value`, `llm.token_count.*`) for
  Arize Phoenix.
- Pearlpoint's own (`pearl.*`): run, step, plugin and judgement values; step outputs add
  their own namespaces (`pearl.traces.attributes`).
"""

from __future__ import annotations

# --- OpenTelemetry GenAI -------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"

GEN_AI_EVALUATION_RESULT = "gen_ai.evaluation.result"  # the event's name
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"

OPERATION_CHAT = "chat"
OPERATION_INVOKE_WORKFLOW = "invoke_workflow"

SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# --- OpenInference -------------------------------------------------------------------
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
KIND_CHAIN = "CHAIN"
KIND_LLM = "LLM"
KIND_EVALUATOR = "EVALUATOR"
KIND_GUARDRAIL = "GUARDRAIL"
INPUT_VALUE = "input.value"
INPUT_MIME_TYPE = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME_TYPE = "output.mime_type"
LLM_MODEL_NAME = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_INVOCATION_PARAMETERS = "llm.invocation_parameters"
LLM_TOKEN_COUNT_PROMPT = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL = "llm.token_count.total"
LLM_TOKEN_COUNT_CACHE_READ = "llm.token_count.prompt_details.cache_read"
MIME_JSON = "application/json"
MIME_TEXT = "text/plain"

# --- Pearlpoint ----------------------------------------------------------------------
PEARL_RUN_ID = "pearl.run.id"
PEARL_PIPELINE = "pearl.pipeline"
PEARL_BACKEND = "pearl.backend"
PEARL_STEP_ID = "pearl.step.id"
PEARL_STEP_USE = "pearl.step.use"
PEARL_STEP_PLUGIN = "pearl.step.plugin"
PEARL_STEP_PROGRAM = "pearl.step.program"  # the compiled state file the step ran (absent: its own program)
PEARL_STEP_PARAM = "pearl.step.param"  # prefix: pearl.step.param.<name>
PEARL_STEP_OUTPUT_TYPE = "pearl.step.output_type"
PEARL_STEP_SUMMARY = "pearl.step.summary"  # a step output's key values in one short line (the viewer shows it)
PEARL_USAGE_CALLS = "pearl.usage.calls"
PEARL_HOOK_NAME = "pearl.hook.name"
PEARL_HOOK_PLUGINS = "pearl.hook.plugins"
PEARL_OUTPUT = "pearl.output"  # prefix for plain scalar fields of any step output
PEARL_JUDGEMENT = "pearl.judgement"
