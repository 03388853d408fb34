"""Tenancy: the ambient tenant context, the tenant catalog, isolation modes, provisioning."""

from tenantry.kernel.tenancy.context import (
    Principal,
    TenantContext,
    current_principal,
    current_tenant,
    require_tenant,
    tenant_scope,
)
from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus

__all__ = [
    "IsolationMode",
    "Principal",
    "Tenant",
    "TenantContext",
    "TenantStatus",
    "current_principal",
    "current_tenant",
    "require_tenant",
    "tenant_scope",
]
