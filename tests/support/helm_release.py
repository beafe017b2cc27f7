"""The canarywatch chart installed on the realcluster node: a Helm release and what the
tests read from it (custom resources, pods, the demo receiver's pages).

``helm`` and ``kubectl`` run in the node's network namespace (``RealNode.helm``,
``RealNode.kubectl``); the custom resources are read with the Python client, whose
sockets open there too (``RealNode.api_client``).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from realnode import RealNode

from canarywatch import api

__all__ = ["BUILD_IMAGE", "CHART", "Image", "ImageBuildError", "Release", "build_image"]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "canarywatch"
POSTRENDER = REPO_ROOT / "tests" / "realcluster" / "postrender.py"
RECORD_PATH = "/tmp/pages.jsonl"  # where postrender.py has the demo receiver record pages
GROUP, VERSION = api.API_VERSION.split("/")


@dataclass(frozen=True)
class Image:
    """An image imported into the node, as the chart's image values."""

    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, reference: str) -> Image:
        registry, _, rest = reference.partition("/")
        repository, _, tag = rest.rpartition(":")
        return cls(registry, repository, tag)

    @property
    def values(self) -> dict[str, Any]:
        # Never: the image exists only in the node's containerd, a pull would go nowhere.
        return {
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "pullPolicy": "Never",
        }


BUILD_IMAGE = REPO_ROOT / "hack" / "build-image.sh"


class ImageBuildError(RuntimeError):
    pass


def build_image(reference: str) -> Path:
    """``hack/build-image.sh --ref reference``: the OCI tar of this checkout's image."""
    proc = subprocess.run(
        ["bash", str(BUILD_IMAGE), "--ref", reference],
        capture_output=True, text=True, check=False, timeout=1800, env=os.environ.copy(),
    )  # fmt: skip
    if proc.returncode != 0:
        raise ImageBuildError(f"hack/build-image.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _postrender_wrapper(directory: Path) -> Path:
    """helm wants one executable: this interpreter running tests/realcluster/postrender.py."""
    wrapper = directory / "postrender.sh"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{POSTRENDER}"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper


@dataclass
class Release:
    """``helm install`` of charts/canarywatch as release ``name`` in ``namespace``."""

    node: RealNode
    namespace: str
    image: Image
    name: str = "canarywatch"
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def fullname(self) -> str:
        return self.name if "canarywatch" in self.name else f"{self.name}-canarywatch"

    @property
    def relay(self) -> str:
        return f"{self.fullname}-demo-relay"

    @property
    def integration(self) -> str:
        return f"{self.fullname}-demo-relay"

    @property
    def probe(self) -> str:
        return f"{self.integration}-canaries"

    @property
    def receiver(self) -> str:
        return f"{self.fullname}-demo-pd-receiver"

    @property
    def operator(self) -> str:
        return f"{self.fullname}-operator"

    # ---- helm ----------------------------------------------------------------------
    def _values_file(self, values: dict[str, Any]) -> Path:
        path = self.node.workdir / f"values-{self.namespace}-{self.name}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def install(self, *, timeout: str = "8m") -> None:
        values = {"image": self.image.values, **self.values}
        self.node.helm(
            "install", self.name, str(CHART), "--namespace", self.namespace, "--create-namespace",
            "-f", str(self._values_file(values)),
            "--post-renderer", str(_postrender_wrapper(self.node.workdir)),
            "--wait", "--timeout", timeout, timeout=600,
        )  # fmt: skip

    def upgrade(self, values: dict[str, Any], *, wait: bool = True) -> None:
        """``helm upgrade --reuse-values`` with ``values`` on top."""
        args = ["upgrade", self.name, str(CHART), "--namespace", self.namespace, "--reuse-values",
                "-f", str(self._values_file(values)),
                "--post-renderer", str(_postrender_wrapper(self.node.workdir))]  # fmt: skip
        if wait:
            args += ["--wait", "--timeout", "8m"]
        self.node.helm(*args, timeout=600)

    def uninstall(self) -> None:
        self.node.helm("uninstall", self.name, "--namespace", self.namespace, "--wait", "--timeout", "5m")

    # ---- reading -------------------------------------------------------------------
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.node.api_client)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.node.api_client)

    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.node.api_client)

    def get_custom(self, plural: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom().get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return obj

    def list_custom(self, plural: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom().list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural
        )["items"]
        return items

    def patch_custom(self, plural: str, name: str, body: dict[str, Any]) -> None:
        self.custom().patch_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name, body)

    def resume(self, integration: str) -> None:
        """The documented resume: annotate the integration with the incident its kill
        switch holds for (``status.killSwitch.incident``)."""
        holder = self.status("cameraintegrations", integration)["killSwitch"]["incident"]
        self.patch_custom(
            "cameraintegrations", integration, {"metadata": {"annotations": {api.RESUME_ANNOTATION: holder}}}
        )

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.get_custom(plural, name).get("status") or {})

    def incidents(self) -> list[dict[str, Any]]:
        return self.list_custom("leakincidents")

    def pods(self, selector: str) -> list[Any]:
        return list(self.core().list_namespaced_pod(self.namespace, label_selector=selector).items)

    def ready_pods(self, selector: str) -> list[Any]:
        return [
            p for p in self.pods(selector)
            if p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        ]  # fmt: skip

    def pages(self) -> list[dict[str, Any]]:
        """Events the demo receiver accepted (recorded by the post-renderer's ``--record``)."""
        return [record["event"] for record in self.pages_recorded()]

    def pages_recorded(self) -> list[dict[str, Any]]:
        """The receiver's records: ``{"received_at": ISO time, "event": {...}}``."""
        out = self.node.kubectl(
            "exec", "-n", self.namespace, f"deploy/{self.receiver}", "--",
            "/opt/canarywatch/bin/python", "-c",
            f"import pathlib, sys; p = pathlib.Path({RECORD_PATH!r}); "
            "sys.stdout.write(p.read_text() if p.exists() else '')",
            timeout=60, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            return []
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def triggers(self) -> list[dict[str, Any]]:
        return [e for e in self.pages() if e.get("event_action") == "trigger"]

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.node.kubeconfig)}
