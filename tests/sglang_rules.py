"""SGLang's request rules, replicated for `SGLangTestDouble` (tests/sglang_double.py).

Each rule names the SGLang source it comes from (paths in the `sglang` 0.5.23 wheel, and
in the router's sources, `sgl-model-gateway/` in sgl-project/sglang). A violation raises
`Rejected(status, payload)`: the HTTP status and the exact JSON (or text) body SGLang
answers with. SGLang has three error shapes, and the double uses each where SGLang does:

- ``contract``: ``{"error": "<serde text>"}``. `/generate` bodies are first checked
  against the schema generated from `proto/sglang/api/v1`
  (`sglang/api/v1/api_types.py`, gate in `sglang/srt/entrypoints/api_contract.py`,
  applied by `generate_request` in `sglang/srt/entrypoints/http_server.py`).
- ``native``: ``{"error": {"message": ...}}``. A `ValueError` raised while a `/generate`
  request is tokenized or its sampling parameters normalized
  (`_create_error_response` in `http_server.py`).
- ``openai``: ``{"object": "error", "message", "type", "param", "code"}``. Every
  OpenAI-compatible route (`ErrorResponse` in
  `sglang/srt/entrypoints/openai/protocol.py`, `create_error_response` in
  `openai/serving_base.py`; FastAPI validation errors become the same shape with
  type "Bad Request" in `http_server.py`'s `RequestValidationError` handler).

When SGLang's own generated contract module can be loaded (`sglang/api/v1/api_types.py`
of an installed `sglang`, even one installed with `--no-deps`; it needs only `msgspec`),
`generate_contract` defers to it instead of the replica.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path
from typing import Any

#: `SamplingParams` fields of the `/generate` contract, in SGLang's order
#: (`sglang/api/v1/api_types.py`, class `SamplingParams`: "unknown keys rejected").
SAMPLING_FIELDS = (
    "max_new_tokens", "stop", "stop_token_ids", "stop_regex", "temperature", "top_p", "top_k", "min_p",
    "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n", "json_schema", "regex",
    "ebnf", "structural_tag", "ignore_eos", "skip_special_tokens", "spaces_between_special_tokens", "no_stop_trim",
    "stream_interval", "logit_bias", "sampling_seed", "custom_params", "beam_width", "watermark", "choice",
)
_INT = ("max_new_tokens", "top_k", "min_new_tokens", "n", "stream_interval", "sampling_seed", "beam_width")
_FLOAT = ("temperature", "top_p", "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty")
_STR = ("json_schema", "regex", "ebnf", "structural_tag")
_BOOL = ("ignore_eos", "skip_special_tokens", "spaces_between_special_tokens", "no_stop_trim")
#: `sglang/srt/sampling/sampling_params.py`: MAX_STOP_COUNT.
MAX_STOP_COUNT = 32


class Rejected(Exception):
    """SGLang would answer `status` with `payload` (a JSON value, or text when `text` is set)."""

    def __init__(self, status: int, payload: Any, *, text: bool = False):
        super().__init__(f"HTTP {status}: {payload}")
        self.status = status
        self.payload = payload
        self.text = text


def contract_error(message: str) -> Rejected:
    return Rejected(400, {"error": message})


def native_error(message: str, status: int = 400) -> Rejected:
    return Rejected(status, {"error": {"message": message}})


def openai_error(message: str, status: int = 400, err_type: str = "BadRequestError") -> Rejected:
    return Rejected(status, {"object": "error", "message": message, "type": err_type, "param": None, "code": status})


# -- /generate: the schema contract (shape `contract`) ---------------------------------
def _unexpected(v: Any) -> str:
    """serde's description of an unexpected JSON value (`_unexpected` in api_types.py)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean `{'true' if v else 'false'}`"
    if isinstance(v, int):
        return f"integer `{v}`"
    if isinstance(v, float):
        return f"floating point `{v}`"
    if isinstance(v, str):
        return f'string "{v}"'
    return "sequence" if isinstance(v, list) else "map"


def _invalid(v: Any, expected: str) -> Rejected:
    return contract_error(f"invalid type: {_unexpected(v)}, expected {expected}")


def _check_sampling_contract(params: Any) -> None:
    if not isinstance(params, dict):
        raise _invalid(params, "struct SamplingParams")
    for key, value in params.items():
        if key not in SAMPLING_FIELDS:
            listed = ", ".join(f"`{f}`" for f in SAMPLING_FIELDS)
            raise contract_error(f"unknown field `{key}`, expected one of {listed}")
        if value is None:
            continue
        if key in _INT and not (isinstance(value, int) and not isinstance(value, bool)):
            raise _invalid(value, "i64")
        if key in _FLOAT and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise _invalid(value, "f64")
        if key in _STR and not isinstance(value, str):
            raise _invalid(value, "a string")
        if key in _BOOL and not isinstance(value, bool):
            raise _invalid(value, "a boolean")
        if key in ("stop", "stop_regex"):
            items = value if isinstance(value, list) else [value]
            bad = next((s for s in items if not isinstance(s, str)), None)
            if bad is not None or not isinstance(value, (str, list)):
                raise _invalid(bad if isinstance(value, list) else value, "a string")


def _replica_contract(body: Any) -> None:
    if not isinstance(body, dict):
        raise _invalid(body, "struct GenerateRequest")
    text = body.get("text")
    if text is not None:
        items = text if isinstance(text, list) else [text]
        bad = next((t for t in items if not isinstance(t, str)), None)
        if bad is not None or not isinstance(text, (str, list)):
            raise _invalid(bad if isinstance(text, list) else text, "a string")
    ids = body.get("input_ids")
    if ids is not None:
        rows = ids if ids and isinstance(ids[0], list) else [ids]
        if not isinstance(ids, list) or any(not isinstance(r, list) for r in rows) or any(
                not isinstance(t, int) or isinstance(t, bool) for r in rows for t in r):
            raise _invalid(ids, "a sequence of token ids")
    params = body.get("sampling_params")
    if params is not None:
        for p in params if isinstance(params, list) else [params]:
            _check_sampling_contract(p)


_CONTRACT: list = []


def _sglang_contract():
    """SGLang's own generated decoder (`sglang/api/v1/api_types.py`, which imports only
    msgspec), loaded from the installed `sglang` package WITHOUT running `sglang/__init__.py`
    (that pulls in torch and the GPU stack), so the wheel installed with `--no-deps` plus
    msgspec serves; None when either is missing."""
    if _CONTRACT:
        return _CONTRACT[0]
    found = None
    try:
        spec = importlib.util.find_spec("sglang")
        for root in (spec.submodule_search_locations or []) if spec else []:
            path = Path(root) / "api" / "v1" / "api_types.py"
            if path.is_file():
                module_spec = importlib.util.spec_from_file_location("_sglang_api_types", path)
                module = importlib.util.module_from_spec(module_spec)
                module_spec.loader.exec_module(module)
                found = (module.GenerateRequest, module.JsonContractError)
                break
    except Exception:  # noqa: BLE001 - no sglang, no msgspec, or another layout: use the replica
        found = None
    _CONTRACT.append(found)
    return found


def generate_contract(body: Any, *, use_sglang: bool = True) -> None:
    """The `/generate` schema gate: SGLang's own decoder when importable, else the replica."""
    real = _sglang_contract() if use_sglang else None
    if real is None:
        return _replica_contract(body)
    request_type, contract_exc = real
    try:
        request_type.from_json_value(body)
    except contract_exc as exc:
        raise contract_error(str(exc)) from None


# -- /generate: normalisation and verification (shape `native`) --------------------------
def generate_prompts(body: dict[str, Any]) -> tuple[list[Any], list[dict[str, Any]], bool]:
    """(prompts, per-prompt sampling params, is_batch) as `GenerateReqInput.normalize` builds them
    (`sglang/srt/managers/io_struct.py`: text or token ids; a dict of sampling params
    applies to every prompt; a list is indexed per prompt by `__getitem__`, unchecked, so
    a list shorter than the batch fails there: an unhandled IndexError, HTTP 500)."""
    text, ids = body.get("text"), body.get("input_ids")
    if text is None and ids is None:  # `_validate_inputs`; with both, the token ids are used
        raise native_error("Either text, input_ids or input_embeds should be provided.")
    if ids is None:
        batch = isinstance(text, list)
        prompts = list(text) if batch else [text]
    else:
        batch = bool(ids) and isinstance(ids[0], list)
        prompts = list(ids) if batch else [ids]
    params = body.get("sampling_params")
    if params is None:
        per = [{} for _ in prompts]
    elif isinstance(params, dict):
        per = [params for _ in prompts]
    else:
        if len(params) < len(prompts):
            raise Rejected(500, "Internal Server Error", text=True)
        per = list(params)
    return prompts, per, batch


def verify_sampling(params: dict[str, Any], error=native_error) -> None:
    """`SamplingParams.normalize` and `verify` (`sglang/srt/sampling/sampling_params.py`)."""
    stop = params.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOP_COUNT:
        raise error(f"at most {MAX_STOP_COUNT} stop strings are allowed, got {len(stops)}")
    temperature = params.get("temperature")
    temperature = 1.0 if temperature is None else temperature
    if not math.isfinite(temperature) or temperature < 0.0:
        raise error(f"temperature must be a non-negative finite number, got {temperature}.")
    top_p = params.get("top_p")
    top_p = 1.0 if top_p is None else top_p
    if not 0.0 < top_p <= 1.0:
        raise error(f"top_p must be in (0, 1], got {top_p}.")
    max_new = params.get("max_new_tokens")
    if max_new is not None and max_new < 0:
        raise error(f"max_new_tokens must be at least 0, got {max_new}.")
    if sum(params.get(k) not in (None, "") for k in _STR) > 1:
        raise error("Only one of json_schema, regex, ebnf, or structural_tag can be set.")
    # A grammar that does not compile: the grammar backend (xgrammar) fails, and the scheduler
    # aborts the request with status 400 (`sglang/srt/managers/scheduler.py`), which fails
    # a whole /generate batch (`_handle_abort_finish_reason` in tokenizer_manager.py).
    schema = params.get("json_schema")
    if schema:
        try:
            json.loads(schema)
        except ValueError:
            raise error(f"Failed to compile the JSON schema grammar: {schema[:60]!r} is not JSON") from None
    regex = params.get("regex")
    if regex:
        try:
            re.compile(regex)
        except re.error as exc:
            raise error(f"Failed to compile the regex grammar {regex[:60]!r}: {exc}") from None


def verify_length(input_tokens: int, max_new_tokens: int | None, context_len: int, error=native_error) -> None:
    """`TokenizerManager._validate_one_request` (`sglang/srt/managers/tokenizer_manager.py`)."""
    if input_tokens >= context_len:
        raise error(f"The input ({input_tokens} tokens) is longer than the model's context length "
                    f"({context_len} tokens).")
    if max_new_tokens is not None and input_tokens + max_new_tokens > context_len:
        raise error(f"Requested token count exceeds the model's maximum context length of {context_len} tokens. "
                    f"You requested a total of {input_tokens + max_new_tokens} tokens: {input_tokens} tokens from "
                    f"the input messages and {max_new_tokens} tokens for the completion. Please reduce the number "
                    f"of tokens in the input messages or the completion to fit within the limit.")


# -- /v1/chat/completions (shape `openai`) -----------------------------------------------
def chat_sampling(body: Any) -> dict[str, Any]:
    """The sampling params a chat body becomes (`ChatCompletionRequest.to_sampling_params` in
    `openai/protocol.py`), after pydantic's type checks; `response_format` adds
    `json_schema`, next to any `regex`/`ebnf`, so both together fail `verify`. A type error
    has SGLang's status, shape and type ("Bad Request"); its message here only names the
    field, where SGLang's carries pydantic's full text."""
    if not isinstance(body, dict):
        raise openai_error("Input should be a valid dictionary", err_type="Bad Request")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise openai_error("messages: Field required" if messages is None else "messages: Input should be a valid list",
                           err_type="Bad Request")
    if not messages:
        raise openai_error("Messages cannot be empty.")
    for key in ("temperature", "top_p"):
        v = body.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise openai_error(f"{key}: Input should be a valid number", err_type="Bad Request")
    for key in ("max_tokens", "max_completion_tokens", "seed"):
        v = body.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise openai_error(f"{key}: Input should be a valid integer", err_type="Bad Request")
    params: dict[str, Any] = {
        "temperature": body.get("temperature"), "top_p": body.get("top_p"), "stop": body.get("stop"),
        "max_new_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
        "regex": body.get("regex"), "ebnf": body.get("ebnf"),
    }
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema is None:
            raise openai_error("response_format.json_schema.schema: Field required", err_type="Bad Request")
        params["json_schema"] = json.dumps(schema)
    elif fmt.get("type") == "json_object":
        params["json_schema"] = '{"type": "object"}'
    verify_sampling(params, error=openai_error)
    return params


# -- /v1/tokenize (shape `openai`) --------------------------------------------------------
def tokenize_input(body: Any) -> tuple[str, Any]:
    """("prompt" | "messages", value): exactly one must be given (`TokenizeRequest` in `openai/protocol.py`)."""
    if not isinstance(body, dict) or (body.get("prompt") is None) == (body.get("messages") is None):
        raise openai_error("Value error, Exactly one of 'prompt' or 'messages' must be provided.",
                           err_type="Bad Request")
    return ("messages", body["messages"]) if body.get("messages") is not None else ("prompt", body["prompt"])


# -- the router (sgl-model-gateway) -------------------------------------------------------
def router_generate(body: Any) -> None:
    """The router's `/generate` takes ONE prompt: `GenerateRequest.text` is `Option<String>` and
    `sampling_params` one object (`sgl-model-gateway/src/protocols/generate.rs`), read with
    axum's `Json` extractor (`sgl-model-gateway/src/server.rs`), whose rejection is a 422
    in plain text."""
    def reject(what: str) -> Rejected:
        return Rejected(422, f"Failed to deserialize the JSON body into the target type: {what}", text=True)

    if not isinstance(body, dict):
        raise reject("invalid type: expected struct GenerateRequest")
    if isinstance(body.get("text"), list):
        raise reject("text: invalid type: sequence, expected a string")
    if body.get("sampling_params") is not None and not isinstance(body["sampling_params"], dict):
        raise reject("sampling_params: invalid type: sequence, expected struct SamplingParams")
