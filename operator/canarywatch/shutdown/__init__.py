"""Kill-switch actions for standalone mode, and the ``KillSwitch`` that runs them.

Public surface::

    WebhookAction, WebhookRequest   call an HTTP endpoint (retries, optional HMAC signature)
    CommandAction                   run a program (argv list, env, timeout)
    KillSwitch, KillSwitchRecord    engage / resume all actions; record; persist to JSON
    sign, verify_signature          the ``X-Canarywatch-Signature`` scheme, for receivers

Every action is idempotent on canarywatch's side (engaging twice calls nothing twice),
recorded (per action: result, attempts, times) and reversible where a resume step is
configured; what cannot be resumed automatically is listed for a human.
"""

from canarywatch.shutdown.actions import (
    PLACEHOLDERS,
    Action,
    ActionConfigError,
    ActionContext,
    ActionOutcome,
    CommandAction,
    Step,
    WebhookAction,
    WebhookRequest,
)
from canarywatch.shutdown.killswitch import (
    ActionResult,
    ActionStatus,
    KillSwitch,
    KillSwitchError,
    KillSwitchRecord,
    KillSwitchStateError,
    NotEngagedError,
    Phase,
)
from canarywatch.shutdown.signing import SIGNATURE_HEADER, SignatureError, sign, verify_signature

__all__ = [
    "PLACEHOLDERS",
    "SIGNATURE_HEADER",
    "Action",
    "ActionConfigError",
    "ActionContext",
    "ActionOutcome",
    "ActionResult",
    "ActionStatus",
    "CommandAction",
    "KillSwitch",
    "KillSwitchError",
    "KillSwitchRecord",
    "KillSwitchStateError",
    "NotEngagedError",
    "Phase",
    "SignatureError",
    "Step",
    "WebhookAction",
    "WebhookRequest",
    "sign",
    "verify_signature",
]
