"""The backend contract: how a language model is made available to DSPy programs.

A backend is a subclass of `Backend`, registered with `register_backends`. Its
`create(settings)` returns a `dspy.BaseLM` so that every DSPy program and optimizer
runs on it unchanged. Backends that can constrain decoding to a JSON schema say so
(`supports_response_schema`), and DSPy's JSONAdapter then sends the schema with every
structured call.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

ENV_BACKEND = "PEARL_BACKEND"
ENV_BACKEND_URL = "PEARL_BACKEND_URL"
ENV_MODEL = "PEARL_MODEL"


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

    def merged(self, **overrides: Any) -> "BackendSettings":
        """A copy with the non-None `overrides` applied."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return BackendSettings(**data)

    @classmethod
    def from_environment(cls, base: "BackendSettings | None" = None) -> "BackendSettings":
        base = base or cls()
        return base.merged(
            name=os.environ.get(ENV_BACKEND) or None,
            url=os.environ.get(ENV_BACKEND_URL) or None,
            model=os.environ.get(ENV_MODEL) or None,
        )


def select_settings(base: "BackendSettings", *, name: str | None = None, url: str | None = None,
                    model: str | None = None, **overrides: Any) -> BackendSettings:
    """The settings a run uses: explicit arguments, then `PEARL_BACKEND` / `PEARL_BACKEND_URL` /
    `PEARL_MODEL`, then the pipeline file's `[backend]` table (`base`).

    The file's `model` and `url` belong to the file's backend: when another backend is
    chosen they are dropped (a GGUF path is no server's model id), its options and
    sampling settings are kept.
    """
    chosen = name or os.environ.get(ENV_BACKEND) or base.name
    if chosen != base.name:
        base = BackendSettings(**{**base.model_dump(), "name": chosen, "model": None, "url": None})
    return BackendSettings.from_environment(base).merged(name=chosen, url=url, model=model, **overrides)


class Backend:
    """Base class of LM backends.

    Contract: `name` is the registry key; `description` one line for `pearl plugins`;
    `create(settings)` returns a ready `dspy.BaseLM` or raises `pearl.errors.BackendError`
    with advice; `check(settings)` returns a one-line status or raises the same error.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def create(self, settings: BackendSettings):
        raise NotImplementedError

    def check(self, settings: BackendSettings) -> str:
        lm = self.create(settings)
        return f"{self.name}: ready ({getattr(lm, 'model', '?')})"
