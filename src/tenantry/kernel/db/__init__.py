"""Database layer: pools per database, unit of work, migrations, RLS, embedded server."""

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork

__all__ = ["Database", "UnitOfWork"]
