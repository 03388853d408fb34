"""An OpenFeature provider over the flag snapshot.

    from openfeature import api
    api.set_provider(TenantryProvider(store))
    api.get_client().get_boolean_value("new-reports", False)   # the tenant in context

The evaluation context's ``targeting_key`` may name a tenant id; otherwise the ambient tenant
is used. Only boolean flags exist; other types answer the caller's default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata

from tenantry.capabilities.flags.store import FlagStore
from tenantry.kernel.tenancy.context import current_tenant
from tenantry.kernel.tenancy.model import Tenant

_REASONS = {
    "target": Reason.TARGETING_MATCH,
    "plan": Reason.TARGETING_MATCH,
    "rollout": Reason.SPLIT,
    "default": Reason.DEFAULT,
    "unknown": Reason.DEFAULT,
}


class TenantryProvider(AbstractProvider):
    def __init__(
        self, store: FlagStore, tenant_by_id: Callable[[UUID], Tenant | None] | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.tenant_by_id = tenant_by_id

    def get_metadata(self) -> Metadata:
        return Metadata(name="tenantry")

    def _tenant(self, ctx: EvaluationContext | None) -> Tenant | None:
        tenant = current_tenant()
        key = ctx.targeting_key if ctx is not None else None
        if key and self.tenant_by_id is not None and (tenant is None or str(tenant.id) != key):
            try:
                return self.tenant_by_id(UUID(key))
            except ValueError:
                return None
        return tenant

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        tenant = self._tenant(evaluation_context)
        if tenant is None:
            return FlagResolutionDetails(
                default_value, reason=Reason.ERROR, error_code=ErrorCode.TARGETING_KEY_MISSING
            )
        if flag_key not in self.store.flags:
            return FlagResolutionDetails(
                default_value, reason=Reason.ERROR, error_code=ErrorCode.FLAG_NOT_FOUND
            )
        ev = self.store.evaluate(flag_key, tenant)
        return FlagResolutionDetails(ev.value, reason=_REASONS[ev.reason], variant=str(ev.value))

    def _unsupported(self, default_value: Any) -> FlagResolutionDetails[Any]:
        return FlagResolutionDetails(
            default_value, reason=Reason.ERROR, error_code=ErrorCode.TYPE_MISMATCH
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._unsupported(default_value)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._unsupported(default_value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._unsupported(default_value)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        return self._unsupported(default_value)
