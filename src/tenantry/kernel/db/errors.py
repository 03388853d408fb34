"""Which exceptions mean "the database is not reachable right now" (not a bug, not bad input).

A connection terminated by the server (``pg_terminate_backend``, a restart, a failover), a
network error while connecting or talking, a server that refuses connections while it starts
or shuts down: each surfaces in asyncpg as one of several exception classes, some of them
only recognisable by their message. ``database_unavailable`` recognises them all, so that:

- the HTTP layer answers ``503 database-unavailable`` with ``Retry-After`` instead of a 500
  (kernel/http/problems, kernel/http/middleware);
- background loops (job worker, outbox relay, saga resumer) log a warning and carry on after
  a backoff instead of treating it as a crash;
- the unit of work retries a BEGIN that failed on an idle pooled connection dropped while it
  sat in the pool (kernel/db/uow: nothing has run on it yet, so that is safe).

What it does **not** match: SQL errors (constraint violations, syntax, serialization
failures), a statement timeout or a cancelled query (57014), bad values (22xxx). Those are
answered as they are today.
"""

from __future__ import annotations

import asyncio

import asyncpg

#: What talking to the database can raise besides a programming error: loops that visit
#: every store catch these (and then ask ``database_unavailable`` how to log it).
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

#: SQLSTATEs of a lost or refused connection: class 08 (connection exception) and the
#: operator-intervention codes that end a session (57P01 admin shutdown, which
#: ``pg_terminate_backend`` sends; 57P02 crash shutdown; 57P03 cannot connect now; 57P04/05
#: database dropped / idle session timeout).
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})

#: asyncpg InterfaceError messages that mean the connection (or the pool) is gone. "another
#: operation is in progress" is what a connection reports when the server dropped it in the
#: middle of a protocol exchange and the protocol state never reset.
_GONE_MESSAGES = (
    "connection is closed",
    "connection was closed",
    "pool is closing",
    "pool is closed",
    "another operation is in progress",
    "the underlying connection is closed",
    "connection has been released back to the pool",
)


def database_unavailable(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what it was raised from) means the database could not be reached
    or the connection was lost: retrying later may succeed, nothing is wrong with the request."""
    seen = 0
    while exc is not None and seen < 8:
        if _unavailable(exc):
            return True
        exc = exc.__cause__
        seen += 1
    return False


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresConnectionError):  # 08xxx, ConnectionDoesNotExist
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state.startswith("08") or state in UNAVAILABLE_SQLSTATES
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc).lower()
        return any(m in text for m in _GONE_MESSAGES)
    if isinstance(exc, asyncpg.InternalClientError):
        # "cannot switch to state 15; another operation (2) is in progress": the server's
        # FATAL error of a terminated backend arrived on an idle connection, which waits in
        # state 2 (consuming an error) for a ReadyForQuery that never comes.
        text = str(exc)
        return "cannot switch to state" in text and "another operation (2)" in text
    if isinstance(exc, OSError | asyncio.TimeoutError):
        # Refused, reset, no route, name resolution, a connect() that timed out: only when
        # raised inside the driver (an OSError of a webhook call or a file is no outage).
        return _through_driver(exc)
    return False


def _through_driver(exc: BaseException) -> bool:
    """Whether ``exc`` was raised from inside asyncpg (one of its frames on the traceback)."""
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith("asyncpg"):
            return True
        tb = tb.tb_next
    return False
