"""HMAC signatures on kill-switch webhooks, for the receiver to check who is calling.

A kill-switch endpoint turns an integration off for every user, so a receiver should
accept the call only from canarywatch. With a shared secret configured, each request
carries::

    X-Canarywatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>

where the HMAC key is the secret (UTF-8) and the message is ``<t>.`` followed by the
exact request body bytes (an empty body signs ``<t>.``). This is the scheme Stripe and
others use, so receivers may already have code for it. To verify: recompute the HMAC
over the received raw body, compare in constant time, and refuse timestamps more than a
few minutes from the receiver's clock, which bounds how long a captured request can be
replayed. ``verify_signature`` does exactly that and is what a Python receiver can call.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "SignatureError",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Canarywatch-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A signature header is missing, malformed, too old or does not match."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Canarywatch-Signature`` value for ``body`` sent at ``timestamp``."""
    if not secret:
        raise ValueError("the signing secret must be a non-empty string")
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Raise ``SignatureError`` unless ``header`` signs ``body`` with ``secret`` near ``now``.

    Several ``v1=`` entries are accepted (any may match), so a sender can sign with an
    old and a new secret while the secret is being rotated.
    """
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed timestamp in signature header") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("signature header needs t=<unix seconds> and v1=<hex>")
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"signature timestamp is more than {tolerance:g} s from the receiver's clock")
    expected = _digest(secret, body, timestamp)
    # Compare every candidate: stopping at the first match would leak which one it was.
    matched = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    if not any(matched):
        raise SignatureError("signature does not match the body")


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
