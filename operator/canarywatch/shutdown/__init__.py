"""The kill switch: one engine for both shells, its vocabulary, and the standalone actions.

Public surface::

    WebhookAction, WebhookRequest   call an HTTP endpoint (retries, optional HMAC signature)
    CommandAction                   run a program (argv list, env, timeout)
    KillSwitch                      the one engine: engage / resume all actions, in order,
                                    idempotent, crash-safe; its record in a StateStore;
                                    reassert when leaks show the kill does not hold
    Holding                         paces those re-assertions (backoff)
    FileStore, MemoryStore          where standalone mode keeps the record
    SwitchState, Result, KillSwitchRecord, ActionRecord
                                    the vocabulary of status.killSwitch (the CRD's words)
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
from canarywatch.shutdown.holding import IN_FLIGHT_GRACE_SECONDS, Holding
from canarywatch.shutdown.killswitch import KillSwitch, NotEngagedError, Resumer, Snapshotting
from canarywatch.shutdown.records import ENGAGED_STATES, ActionRecord, KillSwitchRecord, Result, SwitchState
from canarywatch.shutdown.signing import SIGNATURE_HEADER, SignatureError, sign, verify_signature
from canarywatch.shutdown.state import (
    FileStore,
    KillSwitchError,
    KillSwitchStateError,
    MemoryStore,
    StateStore,
)

__all__ = [
    "ENGAGED_STATES",
    "IN_FLIGHT_GRACE_SECONDS",
    "PLACEHOLDERS",
    "SIGNATURE_HEADER",
    "Action",
    "ActionConfigError",
    "ActionContext",
    "ActionOutcome",
    "ActionRecord",
    "CommandAction",
    "FileStore",
    "Holding",
    "KillSwitch",
    "KillSwitchError",
    "KillSwitchRecord",
    "KillSwitchStateError",
    "MemoryStore",
    "NotEngagedError",
    "Result",
    "Resumer",
    "SignatureError",
    "Snapshotting",
    "StateStore",
    "Step",
    "SwitchState",
    "WebhookAction",
    "WebhookRequest",
    "sign",
    "verify_signature",
]
