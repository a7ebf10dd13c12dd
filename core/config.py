"""Process configuration, read from the environment once at each entry point.

Every variable is validated when the process starts; a bad value stops the start with
an error that names the variable and the rule it broke.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"


class ConfigError(ValueError):
    """A configuration variable is missing or invalid; the message names it."""


class Settings(BaseSettings):
    """All environment configuration of the jobs system."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    app_env: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"

    redis_url: str | None = None
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_username: str | None = None
    redis_password: str | None = None
    redis_tls: bool = False
    # Every Redis key the system writes starts with this prefix (tests use their own).
    redis_key_prefix: str = "bj:"

    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR / 'jobs.db'}"
    # Bring the schema to head when a worker or JobQueue starts; false for deployments that
    # migrate as a separate step (then a database behind the code is refused).
    db_migrate_on_start: bool = True

    # Key for the payload codec that encrypts job inputs and results in Temporal history.
    payload_encryption_key: str | None = None

    # How long a finished job's job_id keeps deduplicating new adds (NFR-022).
    job_dedup_window_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    # How long cancel_job waits for a running job to clean up before terminating it.
    job_cancel_grace_seconds: float = Field(default=10.0, ge=0)
    # How long a stopping worker lets running activities finish (PRD: under 60 s).
    worker_shutdown_grace_seconds: float = Field(default=30.0, ge=0, le=55)

    # Email providers (the clients append their own paths; emulators stand in locally).
    google_oauth_token_url: str = "https://oauth2.googleapis.com/token"
    gmail_api_base_url: str = "https://gmail.googleapis.com"
    google_client_id: str = ""
    google_client_secret: str = ""
    microsoft_oauth_token_url: str = "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    graph_api_base_url: str = "https://graph.microsoft.com/v1.0"
    microsoft_client_id: str = ""
    microsoft_client_secret: str = ""
    # The same variables the anthropic SDK reads; the default base URL is the SDK's own.
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    email_draft_model: str = "claude-sonnet-4-6"
    email_draft_max_tokens: int = Field(default=1024, ge=64, le=8192)
    # Key for OAuth tokens at rest (base64 of 32 bytes); generated under var/ outside production.
    token_encryption_key: str | None = None

    # Vapi voice calls (providers.md 4); the emulator stands in locally.
    vapi_api_base_url: str = "https://api.vapi.ai"
    vapi_api_key: str = ""
    vapi_phone_number_id: str = ""
    # The assistant of calls whose job names none.
    vapi_assistant_id: str = ""
    # Shared secret Vapi sends with each server message (X-Vapi-Secret); messages without it
    # are refused.
    vapi_server_secret: str = ""
    vapi_timeout_seconds: float = Field(default=15.0, gt=0, le=25)
    # Calls in flight at once across every worker (FR-041), held in the database.
    voice_max_calls_in_flight: int = Field(default=3, ge=1, le=100)
    # Where `python -m api` listens (Vapi's server URL points at /v1/providers/vapi/messages).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # Where the Temporal Web UI is, for the links the API gives to a job's page.
    temporal_ui_url: str = "http://127.0.0.1:8233"

    # Apify lead enrichment (providers.md 6); the emulator stands in locally.
    apify_api_base_url: str = "https://api.apify.com"
    apify_token: str = ""
    apify_enrichment_actor_id: str = ""
    # JSON object of our field -> dotted path in the actor's items, merged over the defaults
    # (integrations.apify.DEFAULT_FIELD_MAPPING).
    apify_field_mapping: str = ""

    # PageSpeed Insights v5 (providers.md 9), optional in SEO audits: used when a key is set;
    # the emulator (emulators/pagespeed.py) stands in locally.
    pagespeed_api_key: str = ""
    pagespeed_api_base_url: str = "https://www.googleapis.com"

    # Ad platforms for AD_ANALYSIS / AD_AUTOMATION (providers.md 9; integrations/ads.py); the
    # emulator (emulators/ads.py) stands in locally. Users' access tokens come per account.
    meta_api_base_url: str = "https://graph.facebook.com"
    meta_api_version: str = Field(default="v21.0", pattern=r"^v\d+\.\d+$")
    google_ads_api_base_url: str = "https://googleads.googleapis.com"
    google_ads_api_version: str = Field(default="v18", pattern=r"^v\d+$")
    google_ads_developer_token: str = ""
    # The manager account's id when customers are reached through one (dashes allowed).
    google_ads_login_customer_id: str = Field(default="", pattern=r"^(\d{3}-?\d{3}-?\d{4})?$")

    # Browser automation (WORKFLOW_EXECUTION): local headless Chromium, or Browserbase
    # (providers.md 7; its emulator stands in locally).
    browser_provider: Literal["local", "browserbase"] = "local"
    browserbase_api_base_url: str = "https://api.browserbase.com"
    browserbase_api_key: str = ""
    browserbase_project_id: str = ""
    chromium_path: str = "/usr/bin/chromium"
    # Browser sessions open at once across every worker (FR-043), held in the database.
    browser_max_sessions: int = Field(default=3, ge=1, le=100)
    # Where local Chromium profiles live (empty: the system's temporary directory).
    browser_profiles_dir: str = ""
    # Finished executions, their step results and screenshots are deleted by housekeeping
    # after this many days.
    browser_execution_retention_days: int = Field(default=30, ge=1)

    # SEO crawls (SEO_AUDIT, KEYWORD_ANALYSIS): requests per second to one site (a
    # robots.txt Crawl-delay slows it further), pages fetched at once, one request's timeout.
    seo_crawl_rate_per_second: float = Field(default=5.0, gt=0, le=100)
    seo_crawl_concurrency: int = Field(default=4, ge=1, le=32)
    seo_crawl_timeout_seconds: float = Field(default=20.0, gt=0, le=120)
    # Let a crawl reach private and loopback addresses (the local demo and tests only).
    seo_allow_private_targets: bool = False
    # Stored SEO and ad reports and uploaded ad data files are deleted by housekeeping after
    # this many days (the ad automation audit trail is kept).
    analysis_retention_days: int = Field(default=90, ge=1)

    webhook_allow_private_targets: bool = False
    # Timeout of one outbound HTTP request; workflows.policies.HTTP_TIMEOUT (30 s) bounds the
    # whole attempt, so it must leave room for the rest.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=25)

    @field_validator("apify_field_mapping")
    @classmethod
    def _field_mapping(cls, value: str) -> str:
        # The field names are checked against the schema when the worker builds its client.
        if value.strip():
            try:
                parsed = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not JSON: {exc}") from None
            if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
                raise ValueError("must be a JSON object of field -> dotted path")
        return value

    @field_validator("temporal_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("must be host:port, for example localhost:7233")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if urlsplit(value).scheme not in ("redis", "rediss"):
            raise ValueError("must start with redis:// or rediss://")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_driver(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        if scheme in ("sqlite", "sqlite+aiosqlite"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        raise ValueError("must be a postgresql:// or sqlite:// URL")

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.app_env == "production" and not self.payload_encryption_key:
            raise ValueError("PAYLOAD_ENCRYPTION_KEY is required when APP_ENV=production")
        if self.app_env == "production" and not self.token_encryption_key:
            raise ValueError("TOKEN_ENCRYPTION_KEY is required when APP_ENV=production")
        return self

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def effective_redis_url(self) -> str:
        """REDIS_URL when given, otherwise a URL built from the REDIS_* parts."""
        if self.redis_url:
            return self.redis_url
        scheme = "rediss" if self.redis_tls else "redis"
        auth = ""
        if self.redis_password:
            user = quote(self.redis_username or "", safe="")
            auth = f"{user}:{quote(self.redis_password, safe='')}@"
        return f"{scheme}://{auth}{self.redis_host}:{self.redis_port}/0"


class _MappingSettings(Settings):
    """Settings from an explicit mapping only.

    ``BaseSettings.model_validate`` runs ``__init__``, which merges in the process
    environment (and .env / secrets files) under any field the mapping leaves out; an
    explicit mapping must be the whole configuration, so those sources are switched off.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003 (the pydantic-settings hook signature)
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the configuration; raise ConfigError naming each bad variable.

    With ``environ`` given, only that mapping is read, never ``os.environ``.
    """
    env = dict(os.environ if environ is None else environ)
    known = {name.upper() for name in Settings.model_fields}
    values = {key.lower(): val for key, val in env.items() if key.upper() in known}
    try:
        return _MappingSettings.model_validate(values) if environ is not None else Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]).upper() if err["loc"] else "configuration"
            problems.append(f"{field}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
