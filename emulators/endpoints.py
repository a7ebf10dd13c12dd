"""The settings that point the email jobs at running emulators of Google, Microsoft and
Anthropic (``make run``'s demo, the end-to-end tests, the benchmarks): environment
variable -> value, for emulators serving at the given base URLs."""

from __future__ import annotations

from emulators import google, microsoft


def google_settings(url: str) -> dict[str, str]:
    return {
        "GOOGLE_OAUTH_TOKEN_URL": f"{url}/token",
        "GMAIL_API_BASE_URL": url,
        "GOOGLE_CLIENT_ID": google.DEFAULT_CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": google.DEFAULT_CLIENT_SECRET,
    }


def microsoft_settings(url: str) -> dict[str, str]:
    return {
        "MICROSOFT_OAUTH_TOKEN_URL": url + microsoft.TOKEN_PATH,
        "GRAPH_API_BASE_URL": url + microsoft.GRAPH_PREFIX,
        "MICROSOFT_CLIENT_ID": microsoft.DEFAULT_CLIENT_ID,
        "MICROSOFT_CLIENT_SECRET": microsoft.DEFAULT_CLIENT_SECRET,
    }


def email_provider_settings(
    *, google_url: str, microsoft_url: str, anthropic_url: str, anthropic_key: str
) -> dict[str, str]:
    return {
        **google_settings(google_url),
        **microsoft_settings(microsoft_url),
        "ANTHROPIC_API_KEY": anthropic_key,
        "ANTHROPIC_BASE_URL": anthropic_url,
    }
