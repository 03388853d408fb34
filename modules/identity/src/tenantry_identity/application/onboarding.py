"""Identity's part of tenant onboarding: the options ``admin_email`` and ``admin_password``
(secret: never persisted) and the saga step ``admin``: the tenant's roles (``admin`` plus
every module's default roles) and, with ``admin_email``, its first admin login.

The compensation deletes the admin login this attempt created, recognised by the id drawn
before the saga starts (``NEW_ADMIN_USER_ID``, persisted with its first record), so trying
again with the same e-mail sets the new password; a login that existed before stays. The
roles and the membership go with the store and the catalog row, undone after it.

A saga resumed after a crash no longer knows the password (given or generated: the caller
that would have been shown it is gone), so the step fails and the saga compensates instead
of creating a tenant nobody can log in to.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from tenantry.kernel.tenancy.onboarding import OnboardingOption, OnboardingRun, OnboardingStep
from tenantry_identity.domain.model import EMAIL_RE, MIN_PASSWORD

if TYPE_CHECKING:
    from tenantry_identity.application.services import IdentityService

STEP = "admin"
ADMIN_EMAIL = "admin_email"
ADMIN_PASSWORD = "admin_password"  # noqa: S105 - the option's name
#: The id a login created for the admin gets: drawn before the saga starts (``prepare``), so
#: the compensation can tell the login this attempt created from one that existed before.
NEW_ADMIN_USER_ID = "new_admin_user_id"

OPTIONS = (
    OnboardingOption(
        ADMIN_EMAIL,
        "Create this admin user.",
        {
            "pattern": EMAIL_RE.pattern,
            "description": "the first admin (with admin_password: a new login)",
        },
        max_length=320,
    ),
    OnboardingOption(
        ADMIN_PASSWORD,
        "Its password (else generated).",
        {"minLength": MIN_PASSWORD, "description": "needs admin_email (422 without)"},
        max_length=1024,
        secret=True,
    ),
)


class MissingSecret(RuntimeError):
    """The saga was resumed after a crash: the admin password is gone."""


def _prepare(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return {NEW_ADMIN_USER_ID: str(uuid.uuid4())} if options.get(ADMIN_EMAIL) else {}


def admin_step(
    service: IdentityService[Any],
    default_roles: Callable[[], Mapping[str, list[str]]],
    edge: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
) -> OnboardingStep:
    """The ``admin`` step: after the modules' data steps (order 60), as it is the one that
    needs a secret (a crash before it compensates, one after it resumes to the end).
    ``edge``: how the service's domain errors reach the saga's caller (module.py passes the
    routes' mapping, so a refused admin shows as the problem it always was)."""

    async def seed(run: OnboardingRun) -> Mapping[str, Any] | None:
        if run.resumed and run.options.get(ADMIN_EMAIL):
            raise MissingSecret("resumed after a crash: the admin password is not persisted")
        options = dict(run.options)
        if run.data.get(NEW_ADMIN_USER_ID):
            options[NEW_ADMIN_USER_ID] = run.data[NEW_ADMIN_USER_ID]
        tenant = await run.tenant()
        assert tenant is not None
        with edge():
            async with run.unit_of_work() as uow:
                out = await service.seed_tenant(uow, tenant, options, dict(default_roles()))
        if out.get(ADMIN_EMAIL):
            # TenantOnboarded.admin_email (the welcome message) reads it from the saga.
            run.remember(admin_user_id=out.get("admin_user_id"), admin_email=out[ADMIN_EMAIL])
        return out

    async def unseed(run: OnboardingRun) -> None:
        await service.unseed_tenant(
            run.tenant_id, {NEW_ADMIN_USER_ID: run.data.get(NEW_ADMIN_USER_ID)}
        )

    return OnboardingStep(STEP, seed, unseed, timeout_s=60, order=60, prepare=_prepare)
