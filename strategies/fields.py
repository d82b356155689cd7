"""Constrained output types for DSPy signatures, cheap in prompt tokens.

A `Literal[...]` output field makes DSPy list every allowed value three times in the
prompt, which costs a small model hundreds of tokens for a 33-value category list, and
DSPy drops `Annotated[...]` metadata of top-level output fields when it builds the
response schema. `choice(name, values)` instead makes a small named type whose pydantic
schema is the literal set: its JSON schema is `enum: values` (a schema-constrained
backend turns it into a grammar), the prompt names the type once and lists the values
once, and parsing validates membership. `check_choice` / `check_score` re-check values
in Python for callers that bypass parsing.
"""

from __future__ import annotations

import json
from typing import Sequence

from pydantic_core import core_schema

SCORE_VALUES: tuple[int, ...] = tuple(range(11))


def choice(name: str, values: Sequence, base: type = str) -> type:
    """A type named `name` that accepts exactly `values` (JSON schema: an enum)."""
    allowed = list(values)

    def schema(cls, source, handler):
        return core_schema.literal_schema(allowed)

    return type(name, (base,), {"__get_pydantic_core_schema__": classmethod(schema), "values": tuple(allowed),
                                "__doc__": f"one of {allowed}", "__module__": __name__})


#: An integer 0-10, decoded from the enum {0..10}.
Score = choice("Score", SCORE_VALUES, int)

WEIGHT_VALUES: tuple[int, ...] = tuple(range(1, 11))

#: A likelihood weight 1-10 (1: very unlikely): a set of weights can never be all zero.
Weight = choice("Weight", WEIGHT_VALUES, int)


def text(name: str, max_length: int) -> type:
    """A `str` type of at most `max_length` characters (bounds generation under a grammar).

    DSPy decodes the value of any output field not annotated plain `str` as JSON, so an
    answer such as "1" or "{...}" would arrive as a number or a dict: such a value is
    turned back into its JSON text before validation.
    """

    def schema(cls, source, handler):
        return core_schema.no_info_before_validator_function(_as_text, core_schema.str_schema(max_length=max_length))

    return type(name, (str,), {"__get_pydantic_core_schema__": classmethod(schema),
                               "__doc__": f"text of at most {max_length} characters", "__module__": __name__})


def _as_text(value):
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def text_list(name: str, max_items: int, item: type = str) -> type:
    """A list of `item`s whose JSON schema declares `maxItems: max_items`.

    The bound is for decoding: under a grammar the model cannot write more items.
    Validation accepts longer lists (a backend that does not constrain decoding may send
    them), and the step that reads the list cleans and caps it.
    """

    def schema(cls, source, handler):
        return handler.generate_schema(list[item])

    def json_schema(cls, core, handler):
        result = handler.resolve_ref_schema(handler(core))
        result["maxItems"] = max_items
        return result

    return type(name, (list,), {"__get_pydantic_core_schema__": classmethod(schema),
                                "__get_pydantic_json_schema__": classmethod(json_schema),
                                "__doc__": f"a list of at most {max_items} items", "__module__": __name__})


def check_choice(field: str, value: str, values: Sequence[str]) -> str:
    if value not in values:
        raise ValueError(f"{field} '{value}' is not one of {', '.join(values)}")
    return value


def check_weight(field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in WEIGHT_VALUES:
        raise ValueError(f"{field} {value!r} is not an integer 1-10")
    return value


def check_score(field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in SCORE_VALUES:
        raise ValueError(f"{field} {value!r} is not an integer 0-10")
    return value
