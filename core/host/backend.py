"""The backend contract: how a language model is made available to DSPy programs.

A backend is a subclass of `Backend` (below), registered with the `register_backends`
hook. `Backend.create(settings)` returns a `dspy.BaseLM`, so every DSPy program and
optimizer runs on it unchanged. The runtime wraps what `create` returns in
`pearl.lm.metered.MeteredLM`, which meters usage and traces every call for any
`dspy.BaseLM`: a backend does not count tokens or open spans itself.

`BackendSettings` is what the user chose for one LM; `resolve_settings` is the one
place that turns choices (arguments, environment, the pipeline file's `[backend]`
table, or another role's settings) into them, for every LM role: the task model, the
judges, and the optimizer's proposal/reflection model.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

ENV_BACKEND = "PEARL_BACKEND"
ENV_BACKEND_URL = "PEARL_BACKEND_URL"
ENV_MODEL = "PEARL_MODEL"

API_KEY_VARIABLES = ("PEARL_API_KEY", "OPENAI_API_KEY")
"""The documented API-key variables: the only ones a pipeline file may name (`api_key_env`)."""

_allowed_key_variables: set[str] = set()


def allow_api_key_variable(name: str) -> None:
    """Let `api_key_env` name `name` in this process: what `--api-key-env NAME` on the command line does.

    A pipeline file may choose both the server URL and the key variable, so without this
    rule a downloaded pipeline could send any secret of the environment (say
    `AWS_SECRET_ACCESS_KEY`) to a server of its choosing as a bearer token. Only the user,
    on the command line, may name another variable.
    """
    _allowed_key_variables.add(name)


def check_api_key_variable(name: Any) -> str | None:
    """`name` when it is a documented key variable or one allowed on the command line, else a `ValueError`."""
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise ValueError("api_key_env must name an environment variable")
    if name not in API_KEY_VARIABLES and name not in _allowed_key_variables:
        raise ValueError(
            f"api_key_env = {name!r} is not an API-key variable Pearlpoint reads: a pipeline file may name only "
            f"{' or '.join(API_KEY_VARIABLES)}; to read the key from another variable, pass --api-key-env {name} "
            f"on the command line")
    return name


def check_url(url: str) -> str:
    """`url` when it is a well-formed http(s) URL with a host (and a valid port, if any), else a
    `ValueError` saying how to write it: `http://[::1` or `http://host:99999` fail here, not deep
    inside an HTTP client."""
    fix = "write it as http://HOST:PORT, e.g. http://127.0.0.1:8000 (IPv6: http://[::1]:8000)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL ({exc}): {fix}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host: {fix}")
    return url


class BackendSettings(BaseModel):
    """What the user chose for a backend; each backend reads what applies to it."""

    model_config = ConfigDict(extra="forbid")

    name: str = "llamacpp"
    model: str | None = Field(default=None, description="model path or id; None = the backend's default")
    url: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = 0
    n_ctx: int = 8192
    threads: int | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(
        default=None, description="seconds an HTTP backend waits for each answer (`--timeout`); None = the "
                                  "backend option `timeout`, else the backend's default")
    api_key_env: str | None = Field(
        default=None, description="the environment variable holding the API key; None = the backend's default "
                                  "(PEARL_API_KEY, then OPENAI_API_KEY); see `check_api_key_variable`")

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float | None) -> float | None:
        if value is not None and not (0 < value < float("inf")):
            raise ValueError(f"timeout must be a positive number of seconds (got {value})")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _key_variable(cls, value: Any) -> str | None:
        return check_api_key_variable(value)

    @field_validator("options")
    @classmethod
    def _key_variable_option(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_api_key_variable(value.get("api_key_env"))  # the same rule where backends used to read it
        return value

    # Sampling, context and server settings: checked wherever they come from (a command-line
    # option, the environment, a pipeline file's [backend] table), before any model loads.
    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a finite number of at least 0 (got {value}): pass --temperature 0 for greedy decoding")
        return value

    @field_validator("max_tokens", "n_ctx")
    @classmethod
    def _positive_count(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            flag = "--" + info.field_name.replace("_", "-")
            raise ValueError(f"must be a whole number of at least 1 (got {value}): pass a positive {flag}")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty: name a model (a catalogue name, see `pearl models`, or a GGUF path; a "
                             "server's model id), or leave --model out for the default")
        return value

    @field_validator("threads")
    @classmethod
    def _threads(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be at least 1 (got {value}): pass a positive --threads, or leave it out for all cores")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value < 2**32:
            raise ValueError(f"must be a whole number from 0 to {2**32 - 1} (got {value}): pass another --seed")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value)
        return value

    def merged(self, **overrides: Any) -> "BackendSettings":
        """A copy with the non-None `overrides` applied."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return BackendSettings(**data)
        except ValidationError as exc:
            from pearl.errors import InputError

            raise InputError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                                       for e in exc.errors())) from None

    @classmethod
    def from_environment(cls, base: "BackendSettings | None" = None) -> "BackendSettings":
        """`base` (default: the defaults) under `PEARL_BACKEND` / `PEARL_BACKEND_URL` / `PEARL_MODEL`.

        A building block of `resolve_settings`, which is what callers want: it also drops
        a model and URL that belong to another backend."""
        base = base or cls()
        return base.merged(
            name=os.environ.get(ENV_BACKEND) or None,
            url=os.environ.get(ENV_BACKEND_URL) or None,
            model=os.environ.get(ENV_MODEL) or None,
        )


def resolve_settings(base: BackendSettings, *, name: str | None = None, url: str | None = None,
                     model: str | None = None, environment: bool = True, **overrides: Any) -> BackendSettings:
    """The settings of one LM role: `base` with the user's choices applied.

    Precedence: the explicit arguments (`name`, `url`, `model`, and sampling or context
    `overrides` such as `max_tokens`, `seed`; None means "not chosen"), then, when
    `environment`, `PEARL_BACKEND` / `PEARL_BACKEND_URL` / `PEARL_MODEL`, then `base`.

    `base`'s `model` and `url` belong to `base`'s backend: when another backend is
    chosen they are dropped (a GGUF path is no server's model id, a llama.cpp server is
    not the judge's OpenAI endpoint); its sampling settings and options are kept.

    Roles: the task LM resolves against the pipeline file's `[backend]` table with the
    environment; a judge or optimizer LM resolves against the task's resolved settings
    with `environment=False` (the environment has already been applied to the task), so
    that `--judge-backend openai --judge-url ...` starts from the task's sampling
    settings but never from its model path or URL.
    """
    env_name = (os.environ.get(ENV_BACKEND) or None) if environment else None
    chosen = name or env_name or base.name
    if chosen != base.name:
        base = BackendSettings(**{**base.model_dump(), "name": chosen, "model": None, "url": None})
    if environment:
        base = BackendSettings.from_environment(base)
    return base.merged(name=chosen, url=url, model=model, **overrides)


class Backend(ABC):
    """Base class of LM backends: makes a `dspy.BaseLM` from `BackendSettings`.

    Must implement:

    - `name` (ClassVar): the registry key, as users write it (`--backend NAME`,
      `[backend] name = ...`); `description` (ClassVar): one line for `pearl plugins`.
    - `create(settings) -> dspy.BaseLM`: a ready LM. A subclass of
      `pearl.lm.base.PearlLM` gets request building and schema fitting (the JSON schema
      of structured steps fitted to `max_tokens`) and implements only `complete()`; any
      other `dspy.BaseLM`, e.g. `dspy.LM("openai/gpt-4o-mini")`, works as well. Either
      way the runtime wraps it in `pearl.lm.metered.MeteredLM`, which meters usage
      (`usage` of the OpenAI-shaped response, `prompt_tokens_details.cached_tokens`
      included) and traces each call, so usage budgets and traces work unchanged.
      Report the model's real token counts in that `usage`: calls without them are
      counted with 0 tokens. An LM that can constrain decoding to a JSON schema says
      so with `supports_response_schema`.
      On a failure, raise `pearl.errors.BackendError` whose message says what to fix
      (a URL to pass, a server to start, a model to download).

    May assume:

    - `settings` was resolved by `resolve_settings`: `name` is this backend's, `model`
      and `url` were chosen for it (or are None: use the backend's default), and
      `options` holds the pipeline file's / user's backend-specific options unchecked
      (validate what you read and refuse bad values with a `BackendError`).
    - `create` is called once per LM role per session (task, and judge when it differs),
      from the main thread, before any conversation runs; the LM it returns is then
      called from many threads at once (steps run concurrently, fan-out steps in
      worker threads), and copied with `lm.copy(temperature=..., seed=...)` for a
      retry. It must be thread-safe, or serialise its calls itself.

    May override:

    - `check(settings) -> str`: a one-line status for `pearl backend check` (reachable,
      which model), or a `BackendError`. The default creates the LM.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def create(self, settings: BackendSettings):
        """A ready `dspy.BaseLM` for `settings` (see the class docstring)."""

    def check(self, settings: BackendSettings) -> str:
        """One line saying the backend is ready, or a `BackendError` saying why not."""
        lm = self.create(settings)
        return f"{self.name}: ready ({getattr(lm, 'model', '?')})"
