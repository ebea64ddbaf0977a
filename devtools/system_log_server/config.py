"""Everything the emulator can be told, as one dataclass with working defaults (no auth, no limits, no faults)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0 picks a free port

    # The data set: a JSON Lines file, and/or `generate` events published over the last `days` days.
    events_file: str | None = None
    generate: int = 0
    days: float = 3.0
    seed: int = 7
    personal_share: float = 0.25

    # Streaming: new events per second (published now), and the share persisted `late_seconds` late.
    append_rate: float = 0.0
    late_fraction: float = 0.0
    late_seconds: float = 120.0

    # Auth: an SSWS API token, and/or an OAuth service app (private_key_jwt, optionally DPoP).
    token: str | None = field(default=None, repr=False)
    oauth_client_id: str | None = None
    oauth_public_key: str | dict | None = field(default=None, repr=False)  # PEM text or a JWK
    oauth_scopes: tuple[str, ...] = ("okta.logs.read",)  # the scopes granted to the service app
    token_ttl: int = 3600
    require_dpop: bool = False

    # Okta's limits on /api/v1/logs.
    rate_limit: int = 0  # requests per window; 0 = unlimited
    rate_window_seconds: int = 60
    concurrency_limit: int = 0  # requests in flight; 0 = no cap

    # Faults on /api/v1/logs: probabilities per request.
    fault_seed: int | None = None
    fault_5xx: float = 0.0
    fault_reset: float = 0.0
    fault_truncate: float = 0.0
    fault_timeout: float = 0.0
    fault_slow: float = 0.0
    slow_seconds: float = 5.0
    timeout_events: int = 0  # a first bounded request matching more events than this gets 500 E0000009; 0 = off

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.oauth_client_id and self.oauth_public_key)

    def validate(self) -> None:
        """Raise ValueError naming the first setting that makes no sense."""
        problems = []
        for name in ("fault_5xx", "fault_reset", "fault_truncate", "fault_timeout", "fault_slow", "late_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        if self.fault_5xx + self.fault_reset + self.fault_truncate + self.fault_timeout > 1.0:
            problems.append("fault_5xx + fault_reset + fault_truncate + fault_timeout must not exceed 1")
        for name in ("generate", "rate_limit", "concurrency_limit", "timeout_events", "append_rate",
                     "late_seconds", "slow_seconds"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if self.days <= 0:
            problems.append("days must be positive")
        if self.rate_window_seconds < 1:
            problems.append("rate_window_seconds must be at least 1")
        if self.token_ttl < 1:
            problems.append("token_ttl must be at least 1")
        if bool(self.oauth_client_id) != bool(self.oauth_public_key):
            problems.append("oauth_client_id and oauth_public_key go together")
        if self.require_dpop and not self.oauth_enabled:
            problems.append("require_dpop needs oauth_client_id and oauth_public_key")
        if problems:
            raise ValueError("; ".join(problems))
