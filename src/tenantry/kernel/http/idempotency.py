"""The one rule for idempotency keys, for every route that takes one.

A key is 1-255 visible ASCII characters (``!``..``~``, spaces allowed inside but not at
either end: an HTTP server strips them, so ``" a "`` and ``"a"`` would be two keys to a
client and one to us), and does not start with ``~`` (reserved for keys the platform makes
itself, e.g. ledger reversals). The draft standard (draft-ietf-httpapi-idempotency-key-header)
makes the header an sf-string, which is printable ASCII; the length bound keeps the unique
index small. Routes read the header with :func:`idempotency_key` (or the ``IdempotencyKeyHeader``
dependency) and body fields use :data:`IdempotencyKey`, so the rule cannot drift per route.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pydantic import AfterValidator

from tenantry.kernel.errors import IdempotencyKeyInvalid, IdempotencyKeyMissing
from tenantry.kernel.http.openapi import Documenter, documents

MAX_LENGTH = 255
RULE = f"1-{MAX_LENGTH} visible ASCII characters, not starting with ~, no space at either end"
_VALID = re.compile(rf"[!-}}](?:[ -~]{{0,{MAX_LENGTH - 2}}}[!-~])?")


#: The same rule for the OpenAPI document.
KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_LENGTH,
    "pattern": f"^[!-}}](?:[ -~]{{0,{MAX_LENGTH - 2}}}[!-~])?$",
}


def document_key(*, required: bool) -> Documenter:
    """Declare the ``Idempotency-Key`` header (its rule; ``required``: a missing one is 400)
    on the operations of a route reading it with :func:`idempotency_key`."""

    def rewrite(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
        params: list[dict[str, Any]] = operation.setdefault("parameters", [])
        for param in params:
            if param.get("in") == "header" and param.get("name", "").lower() == "idempotency-key":
                break
        else:
            param = {"name": "Idempotency-Key", "in": "header"}
            params.append(param)
        param["required"] = required
        param["schema"] = dict(KEY_SCHEMA)
        param["description"] = ("Required" if required else "Optional") + f": {RULE}."

    return rewrite


def is_valid(key: str) -> bool:
    return _VALID.fullmatch(key) is not None


def _checked(key: str) -> str:
    if not is_valid(key):
        raise ValueError(f"an idempotency key is {RULE}")
    return key


IdempotencyKey = Annotated[str, AfterValidator(_checked)]
"""A body field that holds an idempotency key (422 with the rule when it breaks it)."""


def idempotency_key(request: Request, *, required: bool) -> str | None:
    """The request's ``Idempotency-Key`` header: 400 ``idempotency-key-missing`` when it is
    required and absent, 400 ``idempotency-key-invalid`` when present and not a valid key
    (an empty header included: it never means "no key")."""
    key = request.headers.get("idempotency-key")
    if key is None:
        if required:
            raise IdempotencyKeyMissing(
                f"{request.method} {request.url.path} needs an Idempotency-Key header (a unique "
                "string per request, reused only to retry the same request)"
            )
        return None
    if not is_valid(key):
        raise IdempotencyKeyInvalid(f"Idempotency-Key must be {RULE}")
    return key


@documents(document_key(required=False))
async def _optional_key(
    request: Request,
    idempotency_key_: Annotated[
        str | None, Header(alias="Idempotency-Key", description=f"Optional: {RULE}.")
    ] = None,
) -> str | None:
    # The parameter only documents the header in OpenAPI; the one rule reads it.
    return idempotency_key(request, required=False)


IdempotencyKeyHeader = Annotated[str | None, Depends(_optional_key)]
"""A route dependency: the optional ``Idempotency-Key`` header, checked by the one rule."""
