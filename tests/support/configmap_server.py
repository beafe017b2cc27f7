"""A real local HTTP server answering the Kubernetes API's ConfigMap GETs, and the
operator's API client (``controller.kube.Kube``) pointed at it: the client's own
behaviour (retries, urgent calls first) tested without an API server."""

from __future__ import annotations

from aiohttp import web
from kubernetes import client

from canarywatch.controller.kube import Kube


def kube_at(port: int) -> Kube:
    """The operator's client for a server on 127.0.0.1:``port`` (plain HTTP)."""
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    return Kube(client.ApiClient(configuration))


async def serve_config_maps(
    port: int, *, answers: list[int] | None = None, seen: list[str] | None = None
) -> web.AppRunner:
    """Answer GETs of a ConfigMap on 127.0.0.1:``port``: the statuses of ``answers`` in
    order (taken from the list), then 200 with the ConfigMap; the name of each ConfigMap
    asked for is appended to ``seen``. ``cleanup()`` the runner returned."""

    async def config_map(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if seen is not None:
            seen.append(name)
        status = answers.pop(0) if answers else 200
        if status != 200:
            return web.json_response({"kind": "Status", "reason": "x", "message": "busy"}, status=status)
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": name}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", config_map)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner
