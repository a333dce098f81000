"""Auth modes and redaction for the HTTP source.

The secret is always the connection's password. It must never reach a log line or an error: `api_key_query` puts it in
the URL, and URLs go into every error we raise. `Redactor` replaces it and doubles as a logging filter for urllib3,
whose DEBUG lines print full URLs.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from sluice.config import HttpAuth
from sluice.sources.http.errors import HttpSourceError


class Redactor(logging.Filter):
    """Replaces every secret with *** in text we log or raise, and registers it with Airflow's masker. As a logging
    filter it also cleans urllib3's DEBUG lines, which print the full URL (an api_key_query key included)."""

    def __init__(self, *secrets: str | None) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 3]
        for secret in self.secrets:
            try:
                from airflow.sdk.log import mask_secret

                mask_secret(secret)
            except Exception:  # noqa: BLE001 - masking is best effort outside a task; redaction below still holds
                pass

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = self(record.getMessage()), None
        return True


class BearerAuth(AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class HeaderKeyAuth(AuthBase):
    def __init__(self, name: str, key: str) -> None:
        self.name, self.key = name, key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers[self.name] = self.key
        return r


class QueryKeyAuth(AuthBase):
    """Sets (not appends) the key parameter, so a next-page URL echoing it does not carry it twice."""

    def __init__(self, name: str, key: str) -> None:
        self.name, self.key = name, key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url or "")
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != self.name]
        r.url = urlunsplit(parts._replace(query=urlencode([*query, (self.name, self.key)])))
        return r


def make_auth(conn: Any, mode: HttpAuth, key_name: str | None) -> AuthBase | None:
    """requests auth for the source's auth mode; the secret is always the connection's password."""
    mode = HttpAuth(mode)
    if mode is HttpAuth.none:
        return None
    if not conn.password:
        raise HttpSourceError(f"auth {mode.value} needs a secret in the password of connection {conn.conn_id!r}")
    if mode is HttpAuth.bearer:
        return BearerAuth(conn.password)
    if mode is HttpAuth.basic:
        return HTTPBasicAuth(conn.login or "", conn.password)
    if mode is HttpAuth.api_key_header:
        return HeaderKeyAuth(key_name or "X-Api-Key", conn.password)
    return QueryKeyAuth(key_name or "api_key", conn.password)
