"""``tenantry worker --modules a,b`` loads only those modules (with what they depend on and
every capability) and consumes their bus queues; it runs no relay, since the relay delivers
in-process consumers too and must run where every module is loaded."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tenantry.kernel.config import Settings
from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.messaging.routing import Routes, Transport
from tenantry.kernel.modules import discover, only
from tenantry.kernel.platform import Platform
from tenantry.testing import MakeTenant
from tests.cli import EXE
from tests.messaging.conftest import PREFIX, eventually, require_rabbit
from tests.messaging.test_crash import folded, publish_many, stop, write_config

N = 20


def test_only_keeps_the_named_modules_their_dependencies_and_the_capabilities() -> None:
    installed = {m.name: m for m in discover()}
    disabled = set(only(["reporting"]))
    assert "reporting" not in disabled
    assert {n for n, m in installed.items() if m.capability}.isdisjoint(disabled)
    assert "identity" not in disabled  # authz and exports, capabilities, depend on it
    assert {"ledger", "notifications"} <= disabled
    assert set(only(["ledger"])) >= {"reporting", "notifications"}
    assert "ledger" not in only(["ledger"])
    assert "notifications" in only(["ledger"], disabled=["notifications"])  # config kept


@pytest.mark.parametrize("names", [["nope"], [""], ["reporting", "nope"]])
def test_only_refuses_unknown_names_naming_what_is_installed(names: list[str]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        only(names)
    assert "installed: " in str(refused.value)
    assert "reporting" in str(refused.value)


def test_the_command_refuses_an_unknown_module_in_one_line() -> None:
    done = subprocess.run(
        [EXE, "worker", "--modules", "ledger,nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "unknown module 'nope'" in done.stderr


def _start(config: Path, log: Path, modules: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [EXE, "--config", str(config), "worker", "--modules", modules],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_worker_for_one_module_consumes_its_queue(
    probed: Platform, make_tenant: MakeTenant, settings: Settings, tmp_path: Path
) -> None:
    await require_rabbit()
    platform = probed
    config = write_config(tmp_path / "worker.toml", settings, PREFIX, "bus")
    saved = dict(platform.dispatcher.routes.edges)
    platform.dispatcher.routes.edges[("ledger", "reporting")] = Transport.BUS
    log = tmp_path / "worker.log"
    tenant = (await make_tenant("shared")).tenant
    account = uuid.uuid4()
    proc = _start(config, log, "reporting")
    try:
        deadline = time.monotonic() + 60
        while b"worker ready" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        text = log.read_text()
        assert "relay=False" in text, text
        assert "modules=identity,reporting" in text, text
        assert "consumers=reporting" in text, text
        await platform.messaging.close()  # a fresh publisher for the bus route
        await platform.messaging.start_relay()
        await publish_many(platform, tenant, account, 0, N, step=10)

        async def all_folded() -> bool:
            return await folded(platform, tenant, account) >= N

        await eventually(all_folded, within=60, interval=0.1)
        assert await folded(platform, tenant, account) == N
    finally:
        stop(proc)
        platform.dispatcher.routes = Routes(saved)
        await platform.messaging.close()
        await platform.messaging.start_relay()
