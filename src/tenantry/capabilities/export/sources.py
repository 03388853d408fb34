"""Export sources: modules register what can be exported; the engine knows nothing of them.

A source declares a query (a parameterless SELECT run in the tenant's unit of work, so RLS
scopes it), its columns with types, which of them can be filtered and sorted on, and a
deterministic order. Column names are SQL identifiers checked here, at registration, and are
the only identifiers a request can put into SQL.

A module registers its sources in its ``setup``::

    from tenantry.capabilities.export.sources import Column, Source, export_sources
    export_sources(registrar).register(Source("ledger.accounts", ACCOUNTS_SQL, (...), ("code",)))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from tenantry.kernel.registrar import Capabilities


class HasCapabilities(Protocol):
    """A platform or a registrar: where the source registry is kept."""

    @property
    def capabilities(self) -> Capabilities: ...


ColumnType = Literal["text", "int", "float", "numeric", "bool", "uuid", "timestamptz", "date"]
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType = "text"
    filterable: bool = True
    #: Decimal places of a ``numeric`` column (Parquet decimal128 scale).
    scale: int = 2
    #: Characters reserved for the column in PDF tables.
    width: int | None = None

    def __post_init__(self) -> None:
        if not _IDENT.match(self.name):
            raise ValueError(f"export column {self.name!r} is not a lower-case SQL identifier")


@dataclass(frozen=True, slots=True)
class Source:
    #: ``<module>.<thing>``, e.g. ``ledger.transactions``.
    name: str
    #: Parameterless SELECT producing at least the declared columns; runs under RLS.
    query: str
    columns: tuple[Column, ...]
    #: Column names giving a total, deterministic order (a unique key last).
    order_by: tuple[str, ...]
    #: Permission the caller must hold to export it (besides ``exports:write``).
    permission: str | None = None
    title: str = ""
    by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"export source name {self.name!r} must look like module.thing")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"source {self.name}: columns must be non-empty and unique")
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})
        for key in self.order_by:
            if key not in self.by_name:
                raise ValueError(f"source {self.name}: order_by column {key!r} is not declared")

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title or self.name,
            "columns": [
                {"name": c.name, "type": c.type, "filterable": c.filterable} for c in self.columns
            ],
            "order_by": list(self.order_by),
        }


class SourceRegistry:
    def __init__(self) -> None:
        self._sources: dict[str, Source] = {}

    def register(self, source: Source) -> None:
        if source.name in self._sources and self._sources[source.name] != source:
            raise ValueError(f"export source {source.name!r} registered twice")
        self._sources[source.name] = source

    def get(self, name: str) -> Source | None:
        return self._sources.get(name)

    def all(self) -> list[Source]:
        return [self._sources[k] for k in sorted(self._sources)]


def export_sources(where: HasCapabilities) -> SourceRegistry:
    """The platform's source registry (created on first use, so module order is irrelevant)."""
    reg = where.capabilities.find(SourceRegistry)
    if reg is None:
        reg = SourceRegistry()
        where.capabilities.provide(SourceRegistry, reg, "exports")
    return reg
