"""What the OAuth clients of every provider share: the registered client and its token URL."""

from __future__ import annotations

import httpx


class TokenEndpoint:
    """An OAuth 2.0 token endpoint and the client registered with it; providers subclass it
    with their refresh call and error dialect."""

    def __init__(
        self, http: httpx.AsyncClient, token_url: str, client_id: str, client_secret: str
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
