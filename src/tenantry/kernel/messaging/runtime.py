"""Messaging wired into the platform: the dispatcher, the relay, and the broker connection
when an edge uses the bus. ``Platform`` owns one ``Messaging``; ``tenantry serve`` starts the
relay in-process (``messaging.relay_in_process``), ``tenantry worker`` runs relay + consumers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tenantry.kernel.messaging.config import MessagingSettings
from tenantry.kernel.messaging.dispatcher import Dispatcher
from tenantry.kernel.messaging.envelope import owner_of
from tenantry.kernel.messaging.relay import Relay
from tenantry.kernel.messaging.routing import Routes

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.messaging.rabbitmq import RabbitBus
    from tenantry.kernel.tenancy.catalog import TenantCatalog

_log = logging.getLogger(__name__)
MIGRATIONS = "tenantry.kernel.messaging.migrations"


class Messaging:
    def __init__(self, db: Database, catalog: TenantCatalog, settings: MessagingSettings) -> None:
        self.settings = settings
        self.dispatcher = Dispatcher(db, settings)
        self.relay = Relay(db, catalog, self.dispatcher, settings)
        self.bus: RabbitBus | None = None

    def configure_routes(self, table: Mapping[str, Any], modules: Iterable[str]) -> None:
        """Validate ``[dispatch]`` (start-up error on an unknown name). Known names: the
        loaded modules, ``platform``, and the owners of messages that loaded modules handle
        (a worker may consume ``ledger`` events without running the ledger itself)."""
        owners = {owner_of(name) for name in self.dispatcher.types}
        routes = Routes.parse(table, [*modules, *owners])
        self.dispatcher.check_routes(routes)
        self.dispatcher.routes = routes

    async def connect_bus(self) -> RabbitBus:
        if self.bus is None:
            from tenantry.kernel.messaging.rabbitmq import RabbitBus

            bus = RabbitBus(self.settings, self.dispatcher)
            await bus.connect()
            self.bus = bus
            self.relay.bus = bus
        return self.bus

    async def start_relay(self) -> None:
        if self.dispatcher.routes.uses_bus:
            await self.connect_bus()
        await self.relay.start()

    async def close(self) -> None:
        await self.relay.stop()
        await self.dispatcher.outbox.wake.close()
        if self.bus is not None:
            bus, self.bus = self.bus, None
            self.relay.bus = None
            await bus.close()
