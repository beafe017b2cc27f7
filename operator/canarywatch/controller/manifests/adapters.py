"""The CameraIntegration's endpoints as an agent reads them (``AgentEnv.ADAPTER``): the
standalone config's ``integration.camera`` / ``integration.viewer`` shape, with Secret
references turned into environment variables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from canarywatch.api import TRANSPORT_ENDPOINTS, AgentEnv
from canarywatch.controller.manifests.pods import env_var
from canarywatch.controller.manifests.probe import BuildError, integration_spec
from canarywatch.incidents.policy import Policy, PolicyError
from canarywatch.spec import ProbeSpec

__all__ = ["camera_adapter", "viewer_adapter", "viewer_policy_env"]


class _SecretEnv:
    """Secret references of headersFrom, each exposed once as ``AgentEnv.secret_variable(n)``."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}

    def variable(self, secret: str, key: str) -> str:
        return self._names.setdefault((secret, key), AgentEnv.secret_variable(len(self._names)))

    def env(self) -> list[dict[str, Any]]:
        return [
            {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for (secret, key), variable in self._names.items()
        ]


def _request_template(raw: Mapping[str, Any], secrets: _SecretEnv) -> dict[str, Any]:
    template: dict[str, Any] = {
        "method": str(raw["method"]),
        "url": str(raw["url"]),
        "headers": {str(k): str(v) for k, v in raw.get("headers", {}).items()},
    }
    if "body" in raw:
        template["body"] = str(raw["body"])
    headers_from = {
        str(item["header"]): {
            "env": secrets.variable(str(item["secretKeyRef"]["name"]), str(item["secretKeyRef"]["key"]))
        }
        for item in raw.get("headersFrom", [])
    }
    if headers_from:
        template["headersFrom"] = headers_from
    return template


def camera_adapter(integration: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    camera = integration_spec(integration)["camera"]
    secrets = _SecretEnv()
    if "push" in camera:
        return {"push": _request_template(camera["push"], secrets)}, secrets.env()
    if "publish" in camera:
        publish = camera["publish"]
        template = _request_template({**publish, "method": "POST"}, secrets)
        del template["method"]
        settings = {k: publish[k] for k in ("protocol", "keyframeInterval", "bitrate") if k in publish}
        return {"publish": {**template, **settings}}, secrets.env()
    if "serve" in camera:
        # In a pod the camera answers on every interface, behind its Service.
        return {"serve": {"host": "0.0.0.0", "port": int(camera["serve"]["port"])}}, []
    raise BuildError("spec.camera", "needs push, serve or publish (CameraIntegration)")


def viewer_adapter(
    spec: ProbeSpec, integration: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The integration's viewer block for the probe's transports: exactly the endpoints
    they use, plus ``pollInterval`` (the standalone config's ``integration.viewer``)."""
    viewer = integration_spec(integration)["viewer"]
    secrets = _SecretEnv()
    adapter: dict[str, Any] = {}
    for index, transport in enumerate(spec.transports):
        endpoint = TRANSPORT_ENDPOINTS[transport]
        if endpoint not in viewer:
            raise BuildError(
                f"spec.transports[{index}]",
                f"transport {transport} needs viewer.{endpoint} in CameraIntegration {spec.integration!r}",
            )
        if endpoint == "hub":  # always POSTed; the device template is the hub viewer's
            hub = viewer["hub"]
            adapter["hub"] = {
                **_request_template({**hub, "method": "POST"}, secrets),
                "device": hub["device"],
                "protocol": hub["protocol"],
            }
            continue
        adapter[endpoint] = _request_template(viewer[endpoint], secrets)
    adapter["pollInterval"] = float(viewer["pollInterval"])
    return adapter, secrets.env()


def viewer_policy_env(integration: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``AgentEnv.POLICY``: the verdict rules of the integration's ``spec.policy``, so
    its viewers confirm (k of n frames) and report exactly the verdicts it treats as
    incidents. Only ``verdicts``: the mode and the kill cap decide the response, which is
    the operator's business, so changing them does not roll the viewers."""
    policy = integration_spec(integration)["policy"]
    try:
        Policy.from_mapping(policy, where="spec.policy")
    except PolicyError as error:
        raise BuildError(error.field, f"{error.message} (CameraIntegration)") from None
    verdicts = policy.get("verdicts")
    if not verdicts:
        return []
    rules = json.dumps({"verdicts": verdicts}, sort_keys=True, separators=(",", ":"))
    return [env_var(AgentEnv.POLICY, rules)]
