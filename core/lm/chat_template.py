"""Rendering a model's own chat template on the client, for raw-prompt endpoints.

SGLang's native `/generate` takes finished prompts, not chat messages. The `sglang`
backend lets a server of 0.5.23 or later render them itself (`/v1/tokenize` with
`messages`), since SGLang may apply a built-in template matched on the model path and
handles BOS its own way; this module is for the explicit `chat_template` option and for
older servers whose tokenizer folder is readable here. `ChatTemplate` renders the
template exactly as Hugging Face `transformers` does (`apply_chat_template`): Jinja2's
immutable sandbox with `trim_blocks` and `lstrip_blocks`, the `raise_exception`,
`strftime_now` and `tojson` helpers, the tokenizer's special tokens as variables,
`add_generation_prompt=True`. When SGLang's chat endpoint uses the same template, a
prompt rendered here is the text it would build, and the two share the prefix cache.

One difference is handled: the chat endpoint tokenizes without adding special tokens,
while `/generate` tokenizes `text` with them, so a tokenizer that adds a BOS token
itself would see it twice. `render` therefore drops a leading `bos_token` from the text
when the tokenizer adds one (`add_bos_token`, true unless the config says false).

Where the template comes from (`find_template`): an explicit `.jinja` file, or a
tokenizer folder holding `chat_template.jinja` or `tokenizer_config.json` (the folder
SGLang reports as `tokenizer_path` in `/model_info`; it is readable when the client
runs on the server's machine, as with `pearl backend launch sglang`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pearl.errors import BackendError


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


@dataclass
class ChatTemplate:
    """A compiled chat template and the special tokens it may refer to."""

    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)
    strip_bos: bool = True
    origin: str = "<string>"

    def __post_init__(self) -> None:
        from jinja2 import TemplateError
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise TemplateError(message)

        def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(self.source)
        except TemplateError as exc:
            raise BackendError(f"the chat template from {self.origin} does not compile ({exc}): fix or replace it") from None

    def render(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text for `messages`, ending with the assistant's turn opener."""
        from jinja2 import TemplateError

        try:
            text = self._template.render(messages=messages, add_generation_prompt=True, **self.special_tokens)
        except TemplateError as exc:
            raise BackendError(f"the chat template from {self.origin} rejected the messages ({exc})") from None
        bos = self.special_tokens.get("bos_token")
        if self.strip_bos and bos and text.startswith(bos):
            text = text[len(bos):]
        return text

    @classmethod
    def from_tokenizer_dir(cls, folder: str | Path) -> "ChatTemplate":
        folder = Path(folder)
        config_path = folder / "tokenizer_config.json"
        config: dict[str, Any] = {}
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise BackendError(f"{config_path} is not valid JSON ({exc})") from None
        source = None
        jinja_file = folder / "chat_template.jinja"
        if jinja_file.is_file():
            source = jinja_file.read_text(encoding="utf-8")
        else:
            tmpl = config.get("chat_template")
            if isinstance(tmpl, list):  # named templates: [{"name": "default", "template": ...}, ...]
                named = {t.get("name"): t.get("template") for t in tmpl if isinstance(t, dict)}
                tmpl = named.get("default") or next(iter(named.values()), None)
            source = tmpl if isinstance(tmpl, str) else None
        if not source:
            raise BackendError(f"no chat template in {folder} (neither chat_template.jinja nor tokenizer_config.json's "
                               f"chat_template): pass one with the backend option chat_template=PATH.jinja")
        tokens = {}
        for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
            text = _token_text(config.get(key))
            if text is not None:
                tokens[key] = text
        return cls(source, tokens, strip_bos=config.get("add_bos_token", True) is not False, origin=str(folder))


def find_template(path: str | Path | None) -> ChatTemplate | None:
    """A template from a `.jinja` file or a tokenizer folder; None when `path` is unusable."""
    if not path:
        return None
    p = Path(path).expanduser()
    if p.is_file():
        return ChatTemplate(p.read_text(encoding="utf-8"), origin=str(p), strip_bos=False)
    if p.is_dir():
        try:
            return ChatTemplate.from_tokenizer_dir(p)
        except BackendError:
            return None
    return None
