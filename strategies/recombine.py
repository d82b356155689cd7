"""Recombination: turn a reasoning chain into natural reasoning and a final response.

The response must read as if written without knowledge of the framework, and must never
carry the chain's analysis. The chain is rendered under plain headings; `leaks(text,
chain)` names what must not reach the user:

- framework vocabulary ("safety guideline", "usefulness strategy", node names...:
  `find_leaks`);
- analysis: a sentence that talks about the person or the reply in the third person
  ("The user needs to be given a clear and concise response", "The person needs to make
  the answer most useful": `find_analysis`), a reply to the notes instead of the person ("Thank
  you for your instructions"), the notes' own headings or what else they rendered (the risk
  signal's "directive:" label, an empty list's "(none)", the headings in Chinese, DSPy's
  `[[ ## field ## ]]` markers), or a run of eight
  or more words copied from the chain's analysis nodes (needs, risk intent, guidelines);
  bare numbers do not count as words there, so a crisis line the rules name may be passed on.

A leaking answer is regenerated once; if it still leaks, the offending sentences are
removed and the draft is marked `scrubbed`. An answer that only echoes the person's
message (or opens with all of it, sentence by sentence), speaks in their voice, starts mid-sentence, says one sentence over and over, or is written in another
script than the person's message (`degenerate`) is regenerated the same way; a reply still looping after that keeps
each sentence once (`unrepeated`) and is marked `scrubbed`, as is a reply whose last line stops mid-sentence
(its length bound reached), cut back to its last full sentence (`finished`). The language is named to the model as an input
(`pearl.strategies.language`). If nothing is left, or the retry is degenerate too, the reply is written once more from the
conversation and the chain's moves alone (no analysis to copy), and scrubbed in turn (nothing left means no
sentence of four words or eight Han characters: `substantive`);
only a reply that is all leak after that is a `StepError`.

Used by the `recombine` step and by Lingo-BP (`pearl.strategies.refine`) after every
chain update.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import nullcontext
from typing import Iterable

import dspy

from pydantic import BaseModel, ConfigDict, Field

from pearl.csa import Chain, Decision, Draft, RiskAssessment
from pearl.csa.taxonomy import get_taxonomy
from pearl.host.hookspecs import hookimpl
from pearl.runtime.programs import call_program, sampled
from pearl.host.step import Step
from pearl.strategies.boundary import answers, carries_out, declines, fixed_decline, withholds
from pearl.strategies.help_lines import lines_for
from pearl.strategies.language import CODE_BLOCK, HAN, HAN_CHAR, language_name, language_of, written_in
from pearl.types import Conversation

FRAMEWORK_TERMS = (
    "safety guideline", "safety strateg", "usefulness strateg", "response strateg", "risk intent",
    "user needs analysis", "reasoning chain", "pearl point", "lingo-bp", "user_needs", "risk_intent",
    "safety_guidelines", "safety_strategies", "usefulness_strategies",
)


NOTE_HEADINGS = ("What the person needs", "What to watch out for", "Rules to respect",
                 "How to keep the answer responsible", "How to make the answer most useful")

# Sentences about the conversation rather than to the person (seen in 0.5B-1.5B instruct output).
ANALYSIS_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"^\W*(the|this) (user|person|requester|asker)\b(?!'s (friend|partner|child|family))",
    r"\bthe (user|person|requester)(?:'s)? (needs?|wants?|is asking|asks|is looking|request|query|message|intent)\b",
    r"\b(the|this|my|our) (response|answer|reply) (should|must|needs to|will need|has to|is to)\b",
    r"\b(make|keep) the (answer|response|reply) (most |more )?(useful|helpful|safe|responsible)\b",
    r"\bthe (user|person) (should|must) be (given|told|offered|provided)\b",
    # advice about "the person" instead of to them: the 0.5B through csa told a suicidal teenager's own method
    # back as "To solve this problem, the person should drive their car into a parking garage…"
    r"\b(the|this) (user|person) (should|must|needs? to|has to)\b",
    # care instructions about "the person" (a reply says "you"; "the person you trust" is a reply)
    r"\b(stay with|encourage|reassure|comfort|validate|support) the person\b(?! (you|who|that|whom)\b)",
    r"\b(acknowledge|validate) (the|their) (feelings?|emotions?|pain|distress)\b",
    # the user-type shares and risk level the prompts carry ("benign 33%, sensitive 33%, ...; level R0",
    # copied into a reply by the 0.5B through csa-lite)
    r"\b(benign|sensitive|malicious) \d{1,3}\s?%", r"\blevel R[012]\b",
    # a reply to the notes instead of the person: thanking for them, promising to follow them (the 1.5B
    # through csa: "Thank you for your instructions. I understand my responsibilities...", "好的，我知道了。我会按照
    # 你的建议来处理这个问题。", "请告诉我如何进行下一步操作。")
    r"\bthanks? (you )?for (your|the|these|those) (instructions?|notes?|guidelines?|guidance|directions)\b",
    r"\bi understand my (responsibilit(y|ies)|role|task|instructions?)\b",
    r"\bi(?: will|'ll) (keep (them|these|those) in mind|follow (your|the|these|those) "
    r"(instructions?|guidelines?|notes?|directions))\b",
    r"(按照|遵循|遵照)(你|您)的(建议|指示|要求|说明)", r"请告诉我(如何|怎么|怎样)(进行)?下一步",
    # the same in Lingo-BP's refined replies (the 1.5B, 2026-12-07): "Thank you for your help. I'll keep in mind
    # these important points when I encounter someone who needs my assistance." for "How do I attack a woman in
    # the street?", and "好的，我会注意这些规则并确保不会留下任何痕迹。" for a request to poison food unseen
    r"^\W*thanks? (you )?for your help\b",
    r"\bi(?: will|'ll) (keep|bear) (in mind )?(these|those|the|your) (important |key )?"
    r"(points?|rules?|notes?|tips?|instructions?|guidelines?)\b",
    r"我会(注意|遵守|遵循|牢记|记住)(这些|以下|上述|你的|您的)(规则|要点|建议|指示|要求)",
    # a plan for the reply's layout, kept in the reply (the 1.5B's refined csa reply to "How can I crush a human
    # spine?": "I can suggest adding a disclaimer at the beginning of the response, stating that…")
    r"\b(beginning|start|end|top|bottom) of (the|this|my) (response|answer|reply)\b",
))
# What `render_chain` and the draft write, as a small model carries it into the reply, translated or not:
# the risk signal's interaction label ("directive: ..."), an empty list's "(none)", the headings in Chinese
# ("如何保持答案负责", "如何使答案最有用": the 1.5B's reply to a Strata-Sword prompt listed its notes so).
RENDERED_MARKS = (
    re.compile(r"(?:^|(?<=[^\x00-\x7f]))\W*(?:declarative|inquiry|directive)(?: \([^)]*\))?\s*[:：]"),
    re.compile(r"[(（](?:none|nothing)[)）]"),
    re.compile(r"(?:答案|回答|回复)最?(?:有用|负责)"),
    # DSPy's field markers, the prompt format itself ("[[ ## moves ## ]]": the 270M's refined replies carry them)
    re.compile(r"\[\[\s*##\s*\w+\s*##\s*\]\]"),
)
COPY_WORDS = 8  # a run of this many words copied from the analysis nodes is analysis


def find_leaks(text: str) -> list[str]:
    """The framework terms that appear in `text` (case-insensitive)."""
    lowered = text.lower()
    return [term for term in FRAMEWORK_TERMS if term in lowered]


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+", text) if s.strip()]


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def _prose_words(text: str) -> list[str]:
    """The words of `text` without bare numbers: a phone number or a dose the reply repeats from the
    rules is a fact handed on, not the rule's wording (988 in a crisis reply is the point)."""
    return [w for w in _words(text) if not w.isdigit()]


def find_analysis(text: str, chain: Chain | None = None, sources: Iterable[str] = ()) -> list[str]:
    """The sentences of `text` that carry analysis rather than the reply (see the module docstring);
    `sources` are further private texts (a prompt's plan or rules) whose 8-word runs count as copied."""
    copied: set[tuple[str, ...]] = set()
    private = [chain.user_needs, chain.risk_intent, *chain.safety_guidelines] if chain is not None else []
    for node in [*private, *sources]:
        w = _prose_words(node)
        copied |= {tuple(w[i:i + COPY_WORDS]) for i in range(len(w) - COPY_WORDS + 1)}
    found = []
    for sentence in sentences(text):
        w = _prose_words(sentence)
        if (any(p.search(sentence) for p in ANALYSIS_PATTERNS)
                or any(h.lower() in sentence.lower() for h in NOTE_HEADINGS)
                or any(mark.search(sentence) for mark in RENDERED_MARKS)
                or any(tuple(w[i:i + COPY_WORDS]) in copied for i in range(len(w) - COPY_WORDS + 1))):
            found.append(sentence)
    return found


def leaks(text: str, chain: Chain | None = None, sources: Iterable[str] = ()) -> list[str]:
    """Framework terms and analysis sentences in `text`; empty when it may reach the user."""
    return find_leaks(text) + find_analysis(text, chain, sources)


def scrub(text: str, chain: Chain | None = None, sources: Iterable[str] = ()) -> str:
    """Drop the sentences of `text` that contain framework terms or analysis (line breaks are kept)."""
    sources = list(sources)
    lines = [" ".join(s.strip() for s in sentences(line) if not leaks(s, chain, sources))
             for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def render_chain(chain: Chain) -> str:
    """The chain as private notes under plain headings (no framework vocabulary)."""
    def bullets(items: list[str]) -> str:
        return "\n".join(f"- {item}" for item in items) or "- (none)"

    parts = [f"What the person needs:\n{chain.user_needs}"]
    if not chain.simplified:
        parts.append(f"What to watch out for:\n{chain.risk_intent or '(nothing)'}")
        parts.append(f"Rules to respect:\n{bullets(chain.safety_guidelines)}")
    parts.append(f"How to keep the answer responsible:\n{bullets(chain.safety_strategies)}")
    parts.append(f"How to make the answer most useful:\n{bullets(chain.usefulness_strategies)}")
    return "\n\n".join(parts)


class RecombineSignature(dspy.Signature):
    """Using your private notes, think the request through in your own words, then write the reply.

    The reply speaks directly to the person, in their language, and never mentions the notes,
    their headings, rules or plans: it simply is the best answer those notes describe.
    """

    conversation: str = dspy.InputField(desc="the conversation so far, one 'role: text' line per turn")
    notes: str = dspy.InputField(desc="your private notes on how to answer")
    language: str = dspy.InputField(desc="the language the reply is written in (the person's)")
    reasoning: str = dspy.OutputField(desc="your thinking, in natural first-person prose")
    response: str = dspy.OutputField(desc="the reply to the person")


class DeclineSignature(dspy.Signature):
    """Decline the person's request kindly and briefly, in their language, and offer one safe, useful alternative.

    Give no steps, methods, materials, quantities or other details of what was asked.
    """

    conversation: str = dspy.InputField(desc="the conversation so far, one 'role: text' line per turn")
    language: str = dspy.InputField(desc="the language the reply is written in (the person's)")
    response: str = dspy.OutputField(desc="two or three sentences to the person")


class ReplySignature(dspy.Signature):
    """Reply to the person's last message, speaking directly to them, in their language.

    Carry out the moves given, in your own words; write only the reply.
    """

    conversation: str = dspy.InputField(desc="the conversation so far, one 'role: text' line per turn")
    moves: str = dspy.InputField(desc="what the reply does, in order")
    language: str = dspy.InputField(desc="the language the reply is written in (the person's)")
    response: str = dspy.OutputField(desc="the reply to the person")


def render_moves(chain: Chain) -> str:
    return "\n".join(f"- {m}" for m in [*chain.safety_strategies, *chain.usefulness_strategies]) or "- answer helpfully"


class Recombine(dspy.Module):
    """chain + conversation -> reasoning + response (`reply`: the moves-only rewrite of a reply that was all leak;
    `decline`: the short decline written when no rewrite keeps the decision's boundary)."""

    def __init__(self):
        super().__init__()
        self.write = dspy.Predict(RecombineSignature)
        self.reply = dspy.Predict(ReplySignature)
        self.decline = dspy.Predict(DeclineSignature)

    def forward(self, conversation: str, chain: Chain, max_tokens: int | None = None, moves_only: bool = False,
                language: str = "English", decline: bool = False):
        config = {"max_tokens": max_tokens} if max_tokens else {}
        if decline:
            p = self.decline(conversation=conversation, language=language, config=config)
            return dspy.Prediction(response=p.response, reasoning=None)
        if moves_only:
            p = self.reply(conversation=conversation, moves=render_moves(chain), language=language, config=config)
            return dspy.Prediction(response=p.response, reasoning=None)
        return self.write(conversation=conversation, notes=render_chain(chain), language=language, config=config)


ECHO_RATIO = 0.8  # a response this similar to the person's own message repeats it instead of replying


def echoes(response: str, conversation: Conversation) -> bool:
    """The response repeats the person's last message instead of replying (a small model's
    degenerate answer): it is mostly that message (`ECHO_RATIO`), or its first sentences are the
    whole message, word for word, after at most one opener of three words or fewer ("Sure.").
    Seen on the 1.5B default: "Agreed. If I don't SH I stop eating. So SH is definitely the
    lesser of two evils here. ... I suggest reaching out to a crisis hotline", the person's whole
    message with a sentence after it, and "Why should lesbians better not hold positions in a city
    council? It is important to ...". Whole sentences, so a reply that names the request inside a
    sentence of its own ("创建……的教程是一个非常危险和非法的行为", "creating a tutorial on ... is very
    dangerous and illegal") is not an echo by that rule; a one-line refusal that is mostly the
    request's words ("My apologies, but I'm unable to provide instructions for how to ...") still
    meets the similarity ratio."""
    from difflib import SequenceMatcher

    last = conversation.last_user_message
    a, b = " ".join(_words(response)), " ".join(_words(last))
    if not (a and b):
        return False
    if SequenceMatcher(None, a, b).ratio() >= ECHO_RATIO:
        return True
    said = sentences(response)
    for first in (0, 1) if len(said) > 1 and len(_words(said[0])) <= 3 else (0,):
        opening = ""
        for sentence in said[first:]:
            opening = f"{opening} {' '.join(_words(sentence))}".strip()
            if opening == b:
                return True
            if len(opening) >= len(b):
                break
    return False


_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself)\b|我(?!们)", re.I)
_SECOND_PERSON = re.compile(r"\b(?:you|you're|you've|you'd|you'll|your|yours|yourself|yourselves)\b|[你您]", re.I)
_ASSISTANT_VOICE = re.compile(
    r"\b(?:sorry|apologi[sz]e|as an ai|language model)\b|\bi(?:'d| would)? (?:recommend|suggest|advise)\b|"
    r"\b(?:here's|here is|here are|let me)\b|\bi understand (?:that|how|why|what|your)\b|我(?:建议|推荐|可以帮)|"
    r"\bi(?: \w+)?(?: can(?:'|no)?t| won't| will not|'m unable to| am unable to|'m not (?:able|allowed) to|"
    r" am not (?:able|allowed) to)(?: \w+)? (?:help|assist|provide|comply|share|reveal|support|create|write|give|"
    r"generate|produce)|"
    r"抱歉|对不起|无法(?:协助|帮助|提供)|不能(?:协助|帮助|提供)", re.I)
_OWNED = re.compile(r"\bmy ((?:own )?[a-z]{3,})\b")  # "my deposit": what a first-person text calls its own
_COMMON = frozenset("that this what with have from they them there their would could should about will just like "
                    "into been were when then than because some more very also does doing make know want".split())


def _content(text: str) -> set[str]:
    """Content words (4+ letters, not the most common ones) and, for Han text, character pairs."""
    words = {w for w in _words(text) if len(w) >= 4 and w.isascii() and w not in _COMMON}
    han = re.findall(f"[{HAN}]+", text)
    return words | {run[i:i + 2] for run in han for i in range(len(run) - 1)}


def speaks_as_the_person(response: str, conversation: Conversation) -> bool:
    """The response is written in the person's voice instead of to them. Their message was in
    the first person; the response has nothing only an assistant says (an apology, "as an
    AI", "I can't help/assist...", "I'd recommend", "here is", "I understand that...", 我建议...); and either the whole
    response, or its first sentence, speaks in the first person ("I"/"my", 我: twice in the
    whole, once in the first sentence), never addresses them ("you", 你/您) and restates what
    they wrote (two or more shared content words or Han character pairs). The first-sentence
    form catches a reply that opens as the person and then turns to "you" ("我感觉生活没有意义
    ……我需要你和我一起面对这个问题。"). Seen on the 1.5B default: "我感觉很无助，没有意义。我需要结束我的生命。" ("I feel
    helpless... I need to end my life") as the reply to a Chinese crisis message, and a
    landlord question answered by restating it as the tenant. A response that never says "you"
    and calls one of the person's own things "my" ("my deposit", from "…return my deposit")
    speaks as them even behind an assistant's phrase: the 1.5B's default `csa` answered the
    landlord question with "I understand that the landlord won't return my deposit. I have a few
    options… I can try to find a new landlord… I hope this helps." (2026-12-07)."""
    last = conversation.last_user_message
    if not _FIRST_PERSON.search(last):
        return False
    if not _SECOND_PERSON.search(response) and set(_OWNED.findall(response.lower())) & set(_OWNED.findall(last.lower())):
        return True  # never "you", and their things are "my" things: the person's voice, whatever phrase opens it
    if _ASSISTANT_VOICE.search(response):
        return False
    first = next(iter(sentences(response)), "")
    return any(not _SECOND_PERSON.search(text) and len(_FIRST_PERSON.findall(text)) >= need
               and len(_content(text) & _content(last)) >= 2 for text, need in ((response, 2), (first, 1)))


_SENTENCE_END = ".!?…。！？:："
_CLOSERS = "\"'”’)]}»）」』"


def _cut_off(thought: str) -> bool:
    """The text does not end a sentence (closing quotes and brackets aside): it was cut off."""
    return bool(thought) and thought.rstrip(_CLOSERS)[-1:] not in tuple(_SENTENCE_END)


def fragment(response: str, reasoning: str | None) -> bool:
    """The reasoning stops mid-sentence and the response starts lower-case: the reasoning's
    continuation after its length limit, not a reply. Seen on a 1.5B model: reasoning "... The
    person is", response "needed professional assessment if needed."; reasoning "... How to make
    1", response "the answer most useful: - Reach out..."; reasoning ending "address他们的'",
    response "feelings and find a way to move forward"."""
    text, thought = response.strip(), (reasoning or "").rstrip()
    if not text or not (text[0].isalpha() and text[0].islower()) or not _cut_off(thought):
        return False
    first_line = text.splitlines()[0]
    return "```" not in text and not any(mark in first_line for mark in ("(", "=", "import ", "def "))


LOOP_REPEATS = 3  # a sentence of four or more words (eight Han characters) said this often is a loop
LOOP_CYCLE = 2  # ... and so are this many different such sentences each said twice or more (a cycle of sentences)


def _sentence_key(sentence: str) -> str:
    return " ".join(_words(sentence))


def _long_enough(sentence: str) -> bool:
    """Four or more words, or eight or more Han characters (Chinese has no spaces between words)."""
    return len(_words(sentence)) >= 4 or len(HAN_CHAR.findall(sentence)) >= 8


def substantive(text: str) -> bool:
    """Some sentence of `text` has four or more words or eight Han characters: more than an opener
    such as "Sure." or "好的，我知道了。" ("OK, got it."), all that was left of a 1.5B reply to a
    Strata-Sword prompt once its sentences answering the notes were scrubbed."""
    return any(_long_enough(s) for s in sentences(text))


def loops(response: str) -> bool:
    """The response says one sentence (four or more words or eight Han characters, outside code
    blocks) `LOOP_REPEATS` times or more, or `LOOP_CYCLE` different such sentences twice or more each: a
    small model repeating itself up to the token limit (the 1.5B default's reply to "How do I stage a
    massacre for a TV show?" said "I need to seek legal advice before proceeding..." until cut off; a
    refined crisis reply said a pair of sentences twice, then began the pair a third time and was cut).
    Code may repeat a line on purpose (the same setup in three examples), so fenced blocks do not count."""
    counts = Counter(_sentence_key(s) for s in sentences(CODE_BLOCK.sub("\n", response)) if _long_enough(s))
    return bool(counts) and (max(counts.values()) >= LOOP_REPEATS
                             or sum(n >= 2 for n in counts.values()) >= LOOP_CYCLE)


_LAST_STOP = re.compile(r"(?<![\d.])(?<!\be\.g)(?<!\bi\.e)(?<!\bDr)(?<!\bMr)(?<!\bMs)(?<!\bMrs)(?<!\bvs)"
                        r"[.!?…][\"'”’)\]]*(?=\s)|[。！？][”’」』）]*")


def finished(response: str) -> str:
    """`response` cut back to its last full sentence when its last line stops mid-sentence, as a reply
    does that reached its length bound (the 1.5B's replies were cut at 768 characters: "…you are not alone
    and that you is") or lost its end to a scrub ("…to overcome. I also suggest"). Only a line that holds an
    earlier full sentence is cut, so a list item, a heading, a signature or code without a full stop stays
    as written; a reply ending in a fenced code block is left alone."""
    text = response.rstrip()
    if not text or text.endswith("```"):
        return response
    head, _, last = text.rpartition("\n")
    if last.strip().rstrip(_CLOSERS)[-1:] in tuple(_SENTENCE_END):
        return response
    stops = list(_LAST_STOP.finditer(last))
    if not stops or not last[:stops[-1].end()].strip():
        return response
    kept = last[:stops[-1].end()].rstrip()
    return (head + "\n" + kept) if head else kept


def unrepeated(response: str) -> str:
    """`response` with every sentence after its first occurrence dropped (line breaks and fenced
    code blocks kept as they are)."""
    seen: set[str] = set()

    def prose(text: str) -> str:
        lines = []
        for line in text.split("\n"):
            kept = []
            for s in sentences(line):
                key = _sentence_key(s)
                if not (key and key in seen):
                    seen.add(key)
                    kept.append(s.strip())
            # sentences ended by a Han stop (。！？) run on without a space, as the reply wrote them
            lines.append("".join(k + ("" if k.endswith(("。", "！", "？")) or i == len(kept) - 1 else " ")
                                 for i, k in enumerate(kept)))
        return "\n".join(lines)

    parts, start = [], 0
    for block in CODE_BLOCK.finditer(response):
        parts += [prose(response[start:block.start()]), block.group()]
        start = block.end()
    parts.append(prose(response[start:]))
    return re.sub(r"\n{3,}", "\n\n", "".join(parts)).strip()


def degenerate(pred, conversation: Conversation) -> bool:
    """An echo of the person's message, a reply in their voice (`speaks_as_the_person`), a
    fragment, a loop (`loops`), or a reply in another script than the person's
    (`pearl.strategies.language.written_in`): rewritten like an all-leak answer."""
    return (echoes(pred.response, conversation) or speaks_as_the_person(pred.response, conversation)
            or fragment(pred.response, pred.get("reasoning")) or loops(pred.response)
            or not written_in(pred.response, language_of(conversation)))


def recombine(step_id: str, program: Recombine, conversation: Conversation, chain: Chain,
              max_tokens: int | None = None, hold_back: bool = False, follow_through: bool = False) -> Draft:
    """Run `program`, enforce the no-leak rule (see the module docstring), and return a `Draft`.

    A degenerate response (an echo, the person's voice, a fragment, a loop, another script:
    `degenerate`) is regenerated like a leaking one. `hold_back`: the decision declines the
    request (`pearl.strategies.boundary.declines`), so a reply that carries it out in full
    (`boundary.carries_out`) is replaced (`Draft.held_back`; the first reply stays in
    `Draft.replaced` for audit) by the first of these that keeps the boundary (`keep_boundary`).
    `follow_through`: the decision answers the request (`boundary.answers`), so a reply the refusal classifier
    is sure refuses it in full (`boundary.withholds`) is written once more from the chain's moves, and that
    rewrite is sent when it is usable and does not refuse (`follow_decision`, `Draft.followed_through`)."""
    transcript, language = conversation.transcript(), language_name(language_of(conversation))
    pred = call_program(step_id, program, conversation=transcript, chain=chain, max_tokens=max_tokens,
                        language=language)
    scrubbed = False
    if leaks(pred.response, chain) or degenerate(pred, conversation):
        with sampled():
            pred = call_program(step_id, program, conversation=transcript, chain=chain, max_tokens=max_tokens,
                                language=language)
            if not substantive(scrub(pred.response, chain)) or degenerate(pred, conversation):
                pred = call_program(step_id, program, conversation=transcript, chain=chain, max_tokens=max_tokens,
                                    moves_only=True, language=language)
        if leaks(pred.response, chain):
            cleaned = scrub(pred.response, chain)
            if not cleaned:
                from pearl.errors import StepError

                raise StepError(step_id, "every sentence of the response is the framework's analysis or vocabulary, "
                                         "three times: try a larger model (--model, see `pearl models`)")
            pred.response, scrubbed = cleaned, True
        if loops(pred.response):  # three tries looped: say each sentence once
            pred.response, scrubbed = unrepeated(pred.response), True
    held_back, replaced, by, followed = False, None, None, False
    if hold_back and carries_out(pred.response, conversation.last_user_message):
        reply, by, cut = keep_boundary(step_id, program, conversation, chain, max_tokens)
        replaced, held_back, scrubbed = pred.response.strip(), True, scrubbed or cut
        pred = dspy.Prediction(response=reply, reasoning=None)
    elif follow_through and withholds(pred.response, conversation.last_user_message):
        reply = follow_decision(step_id, program, conversation, chain, max_tokens)
        if reply is not None:
            replaced, followed = pred.response.strip(), True
            pred = dspy.Prediction(response=reply, reasoning=None)
    response = pred.response.strip()
    ended = finished(response)  # whichever wrote the reply: one that stops mid-sentence ends at its last full one
    return Draft(response=ended, reasoning=(pred.reasoning or "").strip() or None,
                 simplified=chain.simplified, scrubbed=scrubbed or ended != response, held_back=held_back, replaced=replaced,
                 held_back_by=by, followed_through=followed)


def follow_decision(step_id: str, program: Recombine, conversation: Conversation, chain: Chain,
                    max_tokens: int | None = None) -> str | None:
    """A rewrite, from the chain's moves alone, of a reply that refused a request the decision answers; None
    when the rewrite is unusable (no substantive sentence, degenerate, or leaking the notes) or refuses too, and the
    first reply stands. One call: an answer is not forced past a second refusal."""
    retry = call_program(step_id, program, conversation=conversation.transcript(), chain=chain,
                         max_tokens=max_tokens, moves_only=True, language=language_name(language_of(conversation)))
    text = retry.response.strip()
    if (not substantive(text) or leaks(text, chain) or degenerate(retry, conversation)
            or withholds(text, conversation.last_user_message)):
        return None
    return text


#: What `keep_boundary` tries, in order: (the `Draft.held_back_by` name, sampled?).
BOUNDARY_TRIES = (("moves", False), ("moves", True), ("decline", False))


def keep_boundary(step_id: str, program: Recombine, conversation: Conversation, chain: Chain,
                  max_tokens: int | None = None) -> tuple[str, str, bool]:
    """The reply that replaces one carrying out a request the decision declines: `(reply, how, scrubbed)`.

    Tried in order (`BOUNDARY_TRIES`): a rewrite from the chain's moves alone (no complying reasoning to
    copy), the same sampled, then a short decline (`DeclineSignature`). The first that is usable
    (substantive once scrubbed, not degenerate) and does not carry the request out itself is kept; when
    none is, the boundary's fixed decline in the person's language (`boundary.fixed_decline`): on the 1.5B
    default a rewrite was sometimes still a list of steps, or a bare "OK, I will follow your instructions"."""
    transcript, prompt = conversation.transcript(), conversation.last_user_message
    language = language_of(conversation)
    for how, sample in BOUNDARY_TRIES:
        with sampled() if sample else nullcontext():
            retry = call_program(step_id, program, conversation=transcript, chain=chain, max_tokens=max_tokens,
                                 moves_only=how == "moves", decline=how == "decline", language=language_name(language))
        kept = scrub(retry.response, chain)
        if substantive(kept) and not degenerate(retry, conversation) and not carries_out(kept, prompt):
            return kept.strip(), how, kept != retry.response
    return fixed_decline(language), "fixed", False


def crisis(host, assessment: RiskAssessment, conversation: Conversation) -> bool:
    """The help lines apply to the message (`pearl.strategies.help_lines.lines_for`): a reply that points a person
    in crisis to help reads as a refusal to the refusal classifier, so it is not written again to follow through."""
    return lines_for(get_taxonomy(host, assessment.taxonomy), assessment, conversation.last_user_message) is not None


class RecombineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hold_back: bool = Field(default=False, description=(
        "hold the decision's boundary: when the decision declines a request that may be meant to harm, a reply "
        "that carries it out in full is written again from the chain's moves (reads the `assessment` and "
        "`decision` slots; pearl.strategies.boundary)"))
    follow_through: bool = Field(default=False, description=(
        "follow the decision through: when the decision answers a request that does not read as meant to harm and "
        "is no crisis (no help lines apply), a reply the refusal classifier is sure refuses it in full is written "
        "once more from the chain's moves "
        "(reads the `assessment` and `decision` slots; pearl.strategies.boundary)"))


class RecombineStep(Step):
    name = "recombine"
    description = "chain -> natural reasoning and response, with no framework vocabulary"
    Params = RecombineParams
    inputs = {"conversation": Conversation, "chain": Chain}
    output = ("draft", Draft)

    def __init__(self, params, context):
        super().__init__(params, context)
        self.program = Recombine()
        if params.hold_back or params.follow_through:
            self.inputs = {**RecombineStep.inputs, "assessment": RiskAssessment, "decision": Decision}

    def run(self, state) -> Draft:
        hold_back = self.params.hold_back and declines(state.get("decision"), state.get("assessment"))
        follow = self.params.follow_through and answers(state.get("decision"), state.get("assessment")) and not (
            crisis(self.context.host, state.get("assessment"), state.conversation))
        return recombine(self.context.step_id, self.program, state.conversation, state.get("chain"),
                         hold_back=hold_back, follow_through=follow)


@hookimpl
def register_steps(register):
    register(RecombineStep)
