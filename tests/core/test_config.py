"""Environment configuration: defaults, Redis and database URLs, and production rules."""

from __future__ import annotations

import pytest

from core.config import VAR_DIR, ConfigError, Settings, load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.temporal_address == "localhost:7233"
    assert settings.temporal_namespace == "default"
    assert settings.app_env == "development"
    assert settings.database_url == f"sqlite+aiosqlite:///{VAR_DIR / 'jobs.db'}"
    assert settings.database_url.endswith("/var/jobs.db")
    assert settings.redis_url is None
    assert settings.effective_redis_url == "redis://127.0.0.1:6379/0"


def test_an_explicit_mapping_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "from-os-environ")
    monkeypatch.setenv("APP_ENV", "production")
    settings = load_settings({"TEMPORAL_ADDRESS": "temporal:7233"})
    assert settings.temporal_namespace == "default"
    assert settings.app_env == "development"
    assert settings.temporal_address == "temporal:7233"


def test_without_a_mapping_the_process_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "from-os-environ")
    assert load_settings().temporal_namespace == "from-os-environ"


def test_variable_names_are_case_insensitive_and_unknown_ones_ignored() -> None:
    settings = load_settings({"temporal_namespace": "jobs", "SOMETHING_ELSE": "x"})
    assert settings.temporal_namespace == "jobs"


@pytest.mark.parametrize("address", ["localhost", "localhost:", ":7233", "host:port"])
def test_temporal_address_needs_host_and_port(address: str) -> None:
    with pytest.raises(ConfigError, match="TEMPORAL_ADDRESS"):
        load_settings({"TEMPORAL_ADDRESS": address})


@pytest.mark.parametrize(
    "url", ["redis://cache:6379/0", "rediss://user:pw@cache.example.com:6380/2"]
)
def test_redis_url_accepts_redis_and_rediss(url: str) -> None:
    settings = load_settings({"REDIS_URL": url})
    assert settings.redis_url == url
    assert settings.effective_redis_url == url


def test_empty_redis_url_falls_back_to_the_parts() -> None:
    settings = load_settings({"REDIS_URL": "", "REDIS_HOST": "cache"})
    assert settings.effective_redis_url == "redis://cache:6379/0"


@pytest.mark.parametrize("url", ["http://cache:6379/0", "cache:6379", "unix:///tmp/redis.sock"])
def test_redis_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(ConfigError, match=r"REDIS_URL: .*redis:// or rediss://"):
        load_settings({"REDIS_URL": url})


def test_redis_parts_assemble_a_url() -> None:
    settings = load_settings(
        {"REDIS_HOST": "cache.internal", "REDIS_PORT": "6380", "REDIS_PASSWORD": "s3cret"}
    )
    assert settings.effective_redis_url == "redis://:s3cret@cache.internal:6380/0"


def test_redis_parts_with_tls_username_and_quoted_password() -> None:
    settings = load_settings(
        {
            "REDIS_HOST": "cache.example.com",
            "REDIS_PORT": "6379",
            "REDIS_USERNAME": "jobs user",
            "REDIS_PASSWORD": "p@ss:w/rd#1",
            "REDIS_TLS": "true",
        }
    )
    assert settings.effective_redis_url == (
        "rediss://jobs%20user:p%40ss%3Aw%2Frd%231@cache.example.com:6379/0"
    )


def test_redis_username_without_password_adds_no_credentials() -> None:
    settings = load_settings({"REDIS_USERNAME": "jobs"})
    assert settings.effective_redis_url == "redis://127.0.0.1:6379/0"


def test_redis_url_wins_over_the_parts() -> None:
    settings = load_settings({"REDIS_URL": "redis://primary:6379/1", "REDIS_HOST": "other"})
    assert settings.effective_redis_url == "redis://primary:6379/1"


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1"])
def test_bad_redis_port_is_named(port: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_PORT") as caught:
        load_settings({"REDIS_PORT": port})
    assert "REDIS_HOST" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("postgres://u:p@db:5432/jobs", "postgresql+psycopg://u:p@db:5432/jobs"),
        ("postgresql://u:p@db:5432/jobs", "postgresql+psycopg://u:p@db:5432/jobs"),
        ("postgresql+psycopg://u@db/jobs", "postgresql+psycopg://u@db/jobs"),
        ("sqlite:///tmp/jobs.db", "sqlite+aiosqlite:///tmp/jobs.db"),
        ("sqlite+aiosqlite:///tmp/jobs.db", "sqlite+aiosqlite:///tmp/jobs.db"),
    ],
)
def test_database_url_is_normalised_to_the_async_driver(url: str, normalised: str) -> None:
    assert load_settings({"DATABASE_URL": url}).database_url == normalised


@pytest.mark.parametrize("url", ["mysql://u:p@db/jobs", "db.example.com/jobs", "http://db/jobs"])
def test_unknown_database_scheme_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings({"DATABASE_URL": url})


def test_production_requires_a_payload_encryption_key() -> None:
    with pytest.raises(ConfigError, match="PAYLOAD_ENCRYPTION_KEY"):
        load_settings({"APP_ENV": "production"})
    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEY"):
        load_settings({"APP_ENV": "production", "PAYLOAD_ENCRYPTION_KEY": "a2V5"})
    settings = load_settings(
        {"APP_ENV": "production", "PAYLOAD_ENCRYPTION_KEY": "a2V5", "TOKEN_ENCRYPTION_KEY": "a2V5"}
    )
    assert settings.is_production


def test_development_runs_without_a_key() -> None:
    settings = load_settings({"APP_ENV": "development"})
    assert settings.payload_encryption_key is None
    assert not settings.is_production


def test_every_bad_variable_is_named_in_one_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_PORT": "x", "DATABASE_URL": "mysql://db", "APP_ENV": "staging"})
    message = str(caught.value)
    for name in ("REDIS_PORT", "DATABASE_URL", "APP_ENV"):
        assert name in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_SHUTDOWN_GRACE_SECONDS", "120"),
        ("WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("JOB_DEDUP_WINDOW_SECONDS", "-1"),
        ("LOG_LEVEL", "TRACE"),
    ],
)
def test_bounded_values_are_checked(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
