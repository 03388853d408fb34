"""Per-edge routing: ``[dispatch]`` in the config maps ``"<owner> -> <consumer>"`` to
``inproc`` or ``bus``; an edge not listed is ``inproc``. The owner of a message is the module
that declares it (the first part of its name; ``platform`` for the kernel's own messages)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from tenantry.kernel.errors import ConfigError

PLATFORM = "platform"


class Transport(StrEnum):
    INPROC = "inproc"
    BUS = "bus"


class Routes:
    def __init__(self, edges: Mapping[tuple[str, str], Transport] | None = None) -> None:
        self.edges: dict[tuple[str, str], Transport] = dict(edges or {})

    @classmethod
    def parse(cls, table: Mapping[str, Any], modules: Iterable[str]) -> Routes:
        """Validate the ``[dispatch]`` table against the loaded modules; every bad entry is
        named in one ConfigError (a start-up error)."""
        known = {PLATFORM, *modules}
        edges: dict[tuple[str, str], Transport] = {}
        problems: list[str] = []
        for key, value in table.items():
            source, sep, target = (p.strip() for p in str(key).partition("->"))
            if not sep or not source or not target:
                problems.append(f"dispatch.{key!r}: an edge is written 'source -> target'")
                continue
            unknown = [n for n in (source, target) if n not in known]
            if unknown:
                problems.append(
                    f"dispatch.{key!r}: unknown module {', '.join(map(repr, unknown))} "
                    f"(loaded: {', '.join(sorted(known))})"
                )
                continue
            try:
                edges[(source, target)] = Transport(str(value))
            except ValueError:
                problems.append(f"dispatch.{key!r}: transport must be 'inproc' or 'bus'")
        if problems:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return cls(edges)

    def transport(self, source: str, target: str) -> Transport:
        return self.edges.get((source, target), Transport.INPROC)

    @property
    def uses_bus(self) -> bool:
        return Transport.BUS in self.edges.values()
