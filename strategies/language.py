"""The language a reply must be written in, and whether a reply is written in it.

A small model shown English instructions and English notes answers in English even when
the person wrote in Chinese (seen on the 1.5B default through `csa`: Strata-Sword's Chinese
prompts got English replies). "Write in the language of the conversation" in a docstring
is not enough for such a model; naming the language as an input, and checking the reply's
script afterwards, is.

- `language_of(conversation)`: the conversation's BCP-47 primary tag: its `language` field
  when set, else guessed from the script of the person's last message (Han → `zh`, kana →
  `ja`, Hangul → `ko`, Cyrillic → `ru`, Arabic → `ar`, otherwise `en`).
- `language_name(tag)`: how the steps name it to the model ("Chinese (中文)").
- `written_in(text, tag)`: the text is plausibly in that language, judged by script only:
  for a language with its own script, at least a third of the text's letters are in it;
  for a Latin-script language, most letters are Latin. Code blocks (```) are not read, and
  a reply with fewer than 8 letters left passes. It is a cheap guard against a reply in the wrong script, not a language
  identifier: it cannot tell English from French.
"""

from __future__ import annotations

import re

from pearl.types import Conversation

#: The CJK unified ideographs (Han characters), as a character-class range: Chinese has no spaces,
#: so the modules that count words count these instead.
HAN = "\u4e00-\u9fff"
HAN_CHAR = re.compile(f"[{HAN}]")

#: Scripts that identify a language on their own, in the order they are tried (kana before
#: Han, so Japanese text with kanji is read as Japanese).
SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", HAN_CHAR),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
)

#: The letters that count as written in each script-identified language (Japanese replies
#: mix kana and kanji).
_OWN_SCRIPT: dict[str, re.Pattern[str]] = {
    "ja": re.compile(f"[\u3040-\u30ff{HAN}]"),
    "ko": re.compile(r"[\uac00-\ud7af]"),
    "zh": HAN_CHAR,
    "ru": re.compile(r"[\u0400-\u04ff]"),
    "ar": re.compile(r"[\u0600-\u06ff]"),
}
#: A fenced code block (an unclosed fence runs to the end); code is not prose in any language.
CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.S)
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")

NAMES: dict[str, str] = {
    "en": "English", "zh": "Chinese (中文)", "ja": "Japanese (日本語)", "ko": "Korean (한국어)",
    "ru": "Russian (русский)", "ar": "Arabic (العربية)", "fr": "French (français)", "de": "German (Deutsch)",
    "es": "Spanish (español)", "it": "Italian (italiano)", "pt": "Portuguese (português)",
}

#: Share of a reply's letters that must be in the language's own script.
MIN_SCRIPT_SHARE = 1 / 3


def language_of(conversation: Conversation) -> str:
    """The conversation's primary language tag: its `language` field, else the last message's script."""
    tag = (conversation.language or "").split("-")[0].lower()
    if tag:
        return tag
    text = conversation.last_user_message
    return next((lang for lang, pattern in SCRIPTS if pattern.search(text)), "en")


def language_name(tag: str) -> str:
    """The language's name as the reply-writing steps give it to the model."""
    return NAMES.get(tag, tag)


def written_in(text: str, tag: str) -> bool:
    """Whether `text` is plausibly written in language `tag`, judged by its script (see the module docstring)."""
    letters = [c for c in CODE_BLOCK.sub(" ", text) if c.isalpha()]
    if len(letters) < 8:
        return True
    own = _OWN_SCRIPT.get(tag)
    if own is not None:
        return sum(bool(own.match(c)) for c in letters) >= MIN_SCRIPT_SHARE * len(letters)
    return sum(bool(_LATIN.match(c)) for c in letters) >= 0.5 * len(letters)
