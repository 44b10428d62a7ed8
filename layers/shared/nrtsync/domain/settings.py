"""The base of every function's settings: a validated pydantic model read once from the environment.

Secrets never live in settings: they name the Secrets Manager secret, and the adapters fetch it through
Powertools Parameters with a cache."""

from __future__ import annotations

import ipaddress
import os
from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError

type IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid; raised at cold start, never per request."""


class EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        """Build the settings from environment variables (aliases are the variable names)."""
        source = dict(os.environ if environ is None else environ)
        try:
            return cls.model_validate({k: v for k, v in source.items() if v != ""})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
            )
            raise SettingsError(f"{cls.__name__} is invalid: {problems}") from exc
