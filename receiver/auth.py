"""Who may post webhooks: the platform's shared secret, a bearer token, or a Standard Webhooks
signature (HMAC-SHA256 over id, timestamp and raw body, five-minute replay window)."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.datastructures import Headers


class WebhookAuth:
    """Checks a request against whichever methods are configured; none configured = open."""

    def __init__(self, secret: SecretStr | None, signing_secret: SecretStr | None) -> None:
        self._secret = secret.get_secret_value().encode() if secret else None
        self._signer = Webhook(signing_secret.get_secret_value()) if signing_secret else None

    def __repr__(self) -> str:  # never show a secret
        methods = [m for m, on in (("secret", self._secret), ("signature", self._signer)) if on]
        return f"WebhookAuth({', '.join(methods) or 'open'})"

    @property
    def open(self) -> bool:
        return self._secret is None and self._signer is None

    def check(self, headers: Headers, body: bytes) -> str | None:
        """None when the request may pass, else why not (safe to show the sender)."""
        if self.open:
            return None
        reasons: list[str] = []
        if self._secret is not None:
            presented = headers.get("x-qualytics-secret")
            if presented is None:
                scheme, _, token = headers.get("authorization", "").partition(" ")
                presented = token.strip() if scheme.lower() == "bearer" else None
            if presented is not None:
                if hmac.compare_digest(presented.encode(), self._secret):
                    return None
                reasons.append("the shared secret does not match")
            else:
                reasons.append("no x-qualytics-secret header or Authorization: Bearer token")
        if self._signer is not None:
            if "webhook-signature" in headers:
                try:
                    self._signer.verify(body, dict(headers), json_parse=False)
                    return None
                except WebhookVerificationError as exc:
                    reasons.append(f"Standard Webhooks signature rejected: {exc}")
                except (ValueError, UnicodeDecodeError):
                    reasons.append("Standard Webhooks signature headers are malformed")
            else:
                reasons.append("no Standard Webhooks signature (webhook-signature header)")
        return "; ".join(reasons)
