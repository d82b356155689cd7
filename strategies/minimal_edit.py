"""The minimal-edit rule of Lingo-BP (CSA.md section 5, step 3), as a pure function.

When the backward pass proposes a new strategy set for one chain node, the chain moves
by at most one new strategy per set per step:

1. Both sets are normalised: whitespace is collapsed and trimmed, blank items dropped,
   and duplicates (same `key`: case-folded, whitespace-collapsed text) removed, first
   occurrence kept.
2. The strategies shared by the old and the proposed set are kept, in the old set's
   order and wording.
3. Of the proposed strategies not in the old set, the one *least similar to the kept
   set* is appended: its novelty is 1 − (its highest token-Jaccard similarity to any
   kept strategy), and ties go to the earlier one in the proposal. With nothing kept,
   the proposal's first new strategy is taken.

So old strategies the proposal dropped are dropped, at most one new one arrives, and a
proposal that differs from the old set (as a set of keys) always yields a result that
differs from the old set: the rule never silently reverts an update (the reference
code's SimHash version often did). A pure reordering is not a change of the set, and
keeps the old order.

Similarity: token Jaccard |A ∩ B| / |A ∪ B| over case-folded word tokens; in scripts
written without spaces (CJK ideographs, kana), every character is its own token, so the
rule works in any language.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def _per_character(ch: str) -> bool:
    """Characters of scripts written without spaces between words (CJK, kana...)."""
    return ord(ch) >= 0x2E80 and not (0xAC00 <= ord(ch) <= 0xD7AF)  # Hangul syllables use spaces


def tokens(text: str) -> frozenset[str]:
    """Case-folded word tokens; per-character tokens for unspaced scripts."""
    out: set[str] = set()
    for word in _WORD.findall(text.casefold()):
        buffer = ""
        for ch in word:
            if _per_character(ch):
                if buffer:
                    out.add(buffer)
                    buffer = ""
                out.add(ch)
            else:
                buffer += ch
        if buffer:
            out.add(buffer)
    return frozenset(out)


def jaccard(a: str, b: str) -> float:
    """Token Jaccard similarity in [0, 1]; two token-less strings are identical (1.0)."""
    ta, tb = tokens(a), tokens(b)
    if not ta and not tb:
        return 1.0
    return len(ta & tb) / len(ta | tb)


def clean(item: str) -> str:
    return _SPACE.sub(" ", item).strip()


def key(item: str) -> str:
    """What makes two strategies the same: case-folded, whitespace-collapsed text."""
    return clean(item).casefold()


def normalise(items: Iterable[str]) -> list[str]:
    """Cleaned, non-blank, de-duplicated (by `key`), in first-seen order."""
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        text = clean(item)
        k = text.casefold()
        if text and k not in seen:
            seen.add(k)
            out.append(text)
    return out


def minimal_edit(old: Iterable[str], proposed: Iterable[str], *,
                 similarity: Callable[[str, str], float] = jaccard) -> list[str]:
    """The strategy set after one minimal step from `old` toward `proposed` (see module docstring)."""
    old_n, new_n = normalise(old), normalise(proposed)
    proposed_keys = {key(p) for p in new_n}
    old_keys = {key(o) for o in old_n}
    kept = [o for o in old_n if key(o) in proposed_keys]
    fresh = [p for p in new_n if key(p) not in old_keys]
    if not fresh:
        return kept
    if not kept:
        return [fresh[0]]

    def novelty(candidate: str) -> float:
        return 1.0 - max(similarity(candidate, k) for k in kept)

    best = max(range(len(fresh)), key=lambda i: (novelty(fresh[i]), -i))
    return kept + [fresh[best]]


def changed(old: Iterable[str], new: Iterable[str]) -> bool:
    """Whether two strategy sets differ as sets of keys."""
    return {key(x) for x in normalise(old)} != {key(x) for x in normalise(new)}
