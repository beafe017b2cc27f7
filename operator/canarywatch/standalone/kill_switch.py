"""The standalone config's `integration.killSwitch` section: the `{webhook, command}`
shorthand or the CRD's `actions` list, read into the shutdown engine's actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from canarywatch.shutdown import ActionConfigError, CommandAction, WebhookAction, WebhookRequest
from canarywatch.standalone.fields import ConfigError, token_source
from canarywatch.viewer.http import AdapterConfigError

__all__ = ["kill_switch_actions"]


def kill_switch_actions(raw: Mapping[str, Any], where: str) -> tuple[WebhookAction | CommandAction, ...]:
    """`{webhook: …, command: …}` shorthand, or the CRD's `{actions: [{name, type, <type>: …}]}`."""
    actions: list[WebhookAction | CommandAction] = []
    if "webhook" in raw:
        actions.append(_webhook(raw["webhook"], f"{where}.webhook", "webhook"))
    if "command" in raw:
        actions.append(_command(raw["command"], f"{where}.command", "command"))
    for i, item in enumerate(raw.get("actions", [])):
        at = f"{where}.actions[{i}]"
        kind = item["type"]
        # The CRD's CEL rule on an action: its type's block, and no other.
        if kind not in item or {"webhook", "command"} - {kind} & item.keys():
            raise ConfigError(f"{at}.type", f"type {kind} needs its settings in `{kind}` and no other block")
        parse = _webhook if kind == "webhook" else _command
        actions.append(parse(item[kind], f"{at}.{kind}", item["name"]))
    names = [a.name for a in actions]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.actions", f"action names must be unique, got {names}")
    return tuple(actions)


def _webhook(raw: Mapping[str, Any], where: str, name: str) -> WebhookAction:
    def request(spec: Mapping[str, Any], at: str) -> WebhookRequest:
        try:
            return WebhookRequest(
                url=spec["url"],
                method=spec["method"],
                headers=spec.get("headers", {}),
                body=spec.get("body"),
                content_type=spec["contentType"],
            )
        except ActionConfigError as e:
            raise ConfigError(f"{at}.{e.field}", e.message) from e

    resume = request(raw["resume"], f"{where}.resume") if "resume" in raw else None
    secret = raw.get("secret", raw.get("secretFrom"))
    try:
        return WebhookAction(
            name=name,
            request=request(raw, where),
            resume_request=resume,
            secret=None if secret is None else token_source(secret, f"{where}.secret").resolve(),
            timeout=float(raw["timeout"]),
            max_attempts=int(raw["maxAttempts"]),
        )
    except AdapterConfigError as e:
        raise ConfigError(e.field, e.message) from e
    except ActionConfigError as e:
        raise ConfigError(f"{where}.{e.field}", e.message) from e


def _command(raw: Mapping[str, Any], where: str, name: str) -> CommandAction:
    resume: Sequence[str] | None = raw.get("resumeArgv")
    try:
        return CommandAction(name=name, argv=raw["argv"], resume_argv=resume, timeout=float(raw["timeout"]))
    except ActionConfigError as e:
        raise ConfigError(f"{where}.{e.field}", e.message) from e
