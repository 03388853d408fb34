"""The composition root: every kernel part exists before any module's setup, which receives a
typed ``Registrar`` (capability handles by type, middleware by declared order, onboarding
steps), and observability is given its parts instead of a half-built platform. No database:
building a Platform connects to nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import pytest
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantry.kernel.config import Settings
from tenantry.kernel.errors import ModuleLoadError
from tenantry.kernel.http.app import create_app
from tenantry.kernel.modules import Module
from tenantry.kernel.observability.middleware import ObservabilityMiddleware
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.onboarding import KIND, OnboardingRun, OnboardingStep

URL = "postgresql://nobody@127.0.0.1:1/none"


class Greeter(Protocol):
    def greet(self) -> str: ...


class Hello:
    def greet(self) -> str:
        return "hello"


class Passthrough:
    def __init__(self, app: ASGIApp, **_: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class Inner(Passthrough):
    pass


class Outer(Passthrough):
    pass


seen: dict[str, Any] = {}


class Ping(BaseModel):
    message_name: ClassVar[str] = "user.Ping.v1"


class Pinged(BaseModel):
    message_name: ClassVar[str] = "user.Pinged.v1"


async def _on_ping(uow: Any, message: Any, ctx: Any) -> None:
    return None


async def _tick(*_: Any) -> None:
    return None


async def _nothing(run: OnboardingRun) -> Mapping[str, Any] | None:
    return None


class Provider(Module):
    name: ClassVar[str] = "provider"

    def setup(self, registrar: Registrar) -> None:
        p = registrar._platform  # what exists while setup runs (modules get the registrar)
        seen["parts"] = {
            part: getattr(p, part, None) is not None
            for part in ("db", "catalog", "messaging", "jobs", "provisioner", "sagas")
        } | {"onboarding": getattr(p, "onboarding", None) is not None}
        seen["observability"] = getattr(p, "observability", None) is not None
        registrar.provide(Greeter, Hello())
        # Registered first, but declared inner: placed by order, not by registration.
        registrar.add_middleware(Inner, order=60)
        registrar.add_onboarding_step(OnboardingStep("late", _nothing, order=70))
        registrar.add_onboarding_step(OnboardingStep("early", _nothing, order=10))


class User(Module):
    name: ClassVar[str] = "user"
    depends_on: ClassVar[tuple[str, ...]] = ("provider",)

    def setup(self, registrar: Registrar) -> None:
        seen["greeting"] = registrar.use(Greeter).greet()
        seen["missing"] = registrar.find(Hello)
        registrar.add_middleware(Outer, order=5)
        registrar.subscribe(Pinged, _on_ping)
        registrar.handle(Ping, _on_ping, replies=True)
        registrar.add_job("user.tick", _tick)


class Clash(Module):
    name: ClassVar[str] = "clash"

    def setup(self, registrar: Registrar) -> None:
        registrar.add_onboarding_step(OnboardingStep("storage", _nothing))


def build(*modules: Module) -> Platform:
    seen.clear()
    return Platform(Settings(), list(modules), URL)


def test_every_kernel_part_exists_before_any_setup() -> None:
    platform = build(Provider(), User())
    assert seen["parts"] == dict.fromkeys(seen["parts"], True)
    assert seen["observability"]
    assert not hasattr(platform, "services")


def test_handlers_and_jobs_are_the_modules() -> None:
    platform = build(Provider(), User())
    assert [s.consumer for s in platform.dispatcher.subscribers["user.Pinged.v1"]] == ["user"]
    assert platform.dispatcher.commands["user.Ping.v1"].consumer == "user"
    assert "user.tick" in platform.jobs.handlers


def test_capabilities_by_type() -> None:
    platform = build(Provider(), User())
    assert seen["greeting"] == "hello"
    assert seen["missing"] is None
    assert platform.use(Greeter).greet() == "hello"
    with pytest.raises(ModuleLoadError, match="no loaded module provides Hello"):
        platform.use(Hello)
    with pytest.raises(ModuleLoadError, match="provides Greeter, which 'provider' provides"):
        platform.capabilities.provide(Greeter, Hello(), "user")


def test_middleware_by_declared_order_observability_outermost() -> None:
    app = create_app(build(Provider(), User()), manage_lifecycle=False)
    stack: list[Any] = [m.cls for m in app.user_middleware]  # outermost first
    mine = [c for c in stack if c in (ObservabilityMiddleware, Outer, Inner)]
    assert mine == [ObservabilityMiddleware, Outer, Inner]


def test_contributed_onboarding_steps_by_order_between_storage_and_activation() -> None:
    platform = build(Provider(), User())
    steps = [s.name for s in platform.sagas.definitions[KIND].steps]
    assert steps == ["record", "storage", "early", "late", "activate", "welcome"]
    with pytest.raises(RuntimeError, match="added in setup"):
        platform.onboarding.add_step(OnboardingStep("later", _nothing))
    with pytest.raises(ValueError, match="'storage' is taken"):
        build(Clash())


def test_observability_is_given_its_parts_not_the_platform() -> None:
    platform = build()
    assert not hasattr(platform.observability, "platform")
    assert platform.observability.db is platform.db
