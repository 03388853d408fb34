"""Messaging: the Dispatcher (send/publish), the transactional outbox and its relay, the
inbox, the RabbitMQ transport, sagas. See docs/architecture.md (Messaging)."""

from tenantry.kernel.messaging.dispatcher import Dispatcher, MessagingError
from tenantry.kernel.messaging.envelope import Headers, MessageContext
from tenantry.kernel.messaging.routing import Transport

__all__ = ["Dispatcher", "Headers", "MessageContext", "MessagingError", "Transport"]
