"""The settings that point the jobs at running emulators of Google, Microsoft, Anthropic,
Vapi, Apify, Browserbase and PageSpeed Insights (``make run``'s demo, the end-to-end tests,
the benchmarks): environment variable -> value, for emulators serving at the given base URLs."""

from __future__ import annotations

from emulators import ads, apify, browserbase, google, microsoft, pagespeed, vapi


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


def vapi_settings(url: str, *, server_secret: str = vapi.DEFAULT_SERVER_SECRET) -> dict[str, str]:
    return {
        "VAPI_API_BASE_URL": url,
        "VAPI_API_KEY": vapi.DEFAULT_API_KEY,
        "VAPI_PHONE_NUMBER_ID": vapi.DEFAULT_PHONE_NUMBER_ID,
        "VAPI_ASSISTANT_ID": vapi.DEFAULT_ASSISTANT_ID,
        "VAPI_SERVER_SECRET": server_secret,
    }


def apify_settings(url: str) -> dict[str, str]:
    return {
        "APIFY_API_BASE_URL": url,
        "APIFY_TOKEN": apify.DEFAULT_TOKEN,
        "APIFY_ENRICHMENT_ACTOR_ID": apify.DEFAULT_ACTOR_ID,
    }


def ads_settings(url: str) -> dict[str, str]:
    """Both ad platforms at one ``emulators.ads`` app; users' tokens come with their accounts
    (``ads.DEFAULT_META_TOKEN``, ``ads.DEFAULT_GOOGLE_TOKEN``)."""
    return {
        "META_API_BASE_URL": url,
        "GOOGLE_ADS_API_BASE_URL": url,
        "GOOGLE_ADS_DEVELOPER_TOKEN": ads.DEFAULT_DEVELOPER_TOKEN,
    }


def browserbase_settings(url: str) -> dict[str, str]:
    return {
        "BROWSER_PROVIDER": "browserbase",
        "BROWSERBASE_API_BASE_URL": url,
        "BROWSERBASE_API_KEY": browserbase.DEFAULT_API_KEY,
        "BROWSERBASE_PROJECT_ID": browserbase.DEFAULT_PROJECT_ID,
    }


def pagespeed_settings(url: str) -> dict[str, str]:
    return {"PAGESPEED_API_BASE_URL": url, "PAGESPEED_API_KEY": pagespeed.DEFAULT_API_KEY}
