"""The operator's API client rides out an API server that is restarting: a refused
connection (nothing sent) and 429/5xx answers are retried within seconds, other errors
are the caller's at once. Against a real local HTTP server, never a patched client."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from configmap_server import kube_at, serve_config_maps
from controlplane import free_port

from canarywatch.controller.kube import CONFIG_MAPS, KubeError


async def test_a_refused_connection_is_retried_until_the_server_is_back() -> None:
    port = free_port()
    kube = kube_at(port)
    runner: web.AppRunner | None = None

    async def come_back() -> None:
        nonlocal runner
        await asyncio.sleep(0.8)  # within the client's retries (0.5 + 1 + 2 s)
        runner = await serve_config_maps(port)

    try:
        later = asyncio.create_task(come_back())
        got = await kube.get(CONFIG_MAPS, "default", "flags")
        await later
        assert got["metadata"]["name"] == "flags"
    finally:
        kube.close()
        if runner is not None:
            await runner.cleanup()


async def test_throttling_and_server_errors_are_retried_but_not_forever() -> None:
    port = free_port()
    answers = [429, 503]
    runner = await serve_config_maps(port, answers=answers)
    kube = kube_at(port)
    try:
        got = await kube.get(CONFIG_MAPS, "default", "flags")
        assert got["metadata"]["name"] == "flags" and answers == []
        answers.extend([500] * 4)  # more than the client retries
        with pytest.raises(KubeError) as failed:
            await kube.get(CONFIG_MAPS, "default", "flags")
        assert failed.value.status == 500 and answers == []
    finally:
        kube.close()
        await runner.cleanup()


async def test_an_answer_that_will_not_change_is_not_retried() -> None:
    port = free_port()
    answers = [404, 500]
    runner = await serve_config_maps(port, answers=answers)
    kube = kube_at(port)
    try:
        assert await kube.get(CONFIG_MAPS, "default", "flags") is None  # 404: gone, at once
        assert answers == [500]  # the second answer was never asked for
    finally:
        kube.close()
        await runner.cleanup()
