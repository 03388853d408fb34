"""Field types for request bodies that mean what the OpenAPI document says.

JSON Schema's ``integer`` is any number with no fraction: ``62.0`` is the integer 62, and a
client or a generator may send it so. pydantic's lax ``int`` also takes the string ``"62"``
(which the schema refuses) and its strict ``int`` refuses ``62.0`` (which the schema allows);
``JsonInt`` takes exactly what the schema does.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _json_int(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected an integer")
        return int(value)
    return value


#: The validator of ``JsonInt``, for an integer with bounds inside a union: write the bounds
#: first, ``Annotated[int, Field(ge=1), JSON_INT] | None``. (``Annotated[JsonInt, Field(ge=1)]
#: | None`` is checked too, but pydantic then writes ``"ge": 1`` into the JSON Schema instead
#: of ``"minimum": 1``, and clients and generators ignore the bound.)
JSON_INT = BeforeValidator(_json_int)
JsonInt = Annotated[int, JSON_INT]
