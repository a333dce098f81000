"""Auth modes and redaction for the HTTP source.

The secret is always the connection's password. It must never reach a log line or an error: `api_key_query` puts it in
the URL (URL-encoded, so a masker that knows only the raw secret misses it), and URLs go into every error we raise.
`redact_url` is the one function that cleans a URL (or text holding URLs); `Redactor` adds the connection's own secret,
raw and encoded, and doubles as a logging filter for urllib3, whose DEBUG lines print full URLs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from sluice.config import HttpAuth
from sluice.sources.http.errors import HttpSourceError

MASK = "***"
# Query parameters whose value is a credential in common APIs (compared case-insensitively); an `api_key_query`
# source adds its own `api_key_name`.
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "signature",
        "sig",
        "password",
        "passwd",
        "secret",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s@'\"<>]+@")


@cache
def _param_pattern(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?i)(?P<name>(?:^|(?<=[?&;#]))(?:{alternatives})=)[^&#;\s'\"<>)\]]*")


def redact_url(url: str, params: Iterable[str] = ()) -> str:
    """`url` with its userinfo (user:pass@) and the values of credential-carrying query parameters (SECRET_PARAMS and
    `params`) replaced by ***. Also works on text that holds URLs or bare `path?query` strings (an exception's text)."""
    names = SECRET_PARAMS | {p.lower() for p in params if p}
    text = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", url)
    return _param_pattern(frozenset(names)).sub(lambda m: m["name"] + MASK, text)


def _encoded_forms(secret: str) -> set[str]:
    """The secret as it may appear in a URL: percent-encoded as urlencode (quote_plus) and quote write it."""
    return {form for form in (quote_plus(secret), quote(secret), quote(secret, safe="")) if form != secret}


class Redactor(logging.Filter):
    """Cleans text we log or raise: every secret, raw and URL-encoded, replaced by ***, then redact_url (with the
    source's key parameter). Registers all those forms with Airflow's masker, so other log lines are masked too."""

    def __init__(self, *secrets: str | None, params: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.params = tuple(p for p in params if p)
        raw = [s for s in secrets if s and len(s) >= 3]
        encoded = {form for s in raw for form in _encoded_forms(s)}
        self.secrets = raw
        self._encoded = (
            re.compile("|".join(re.escape(f) for f in sorted(encoded, key=len, reverse=True)), re.IGNORECASE)
            if encoded
            else None
        )
        for secret in [*raw, *encoded]:
            try:
                from airflow.sdk.log import mask_secret

                mask_secret(secret)
            except Exception:  # noqa: BLE001 - masking is best effort outside a task; redaction below still holds
                pass

    def __call__(self, text: str) -> str:
        # The secrets first: a raw secret with `&` in it would otherwise be half-masked by redact_url.
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        if self._encoded:
            text = self._encoded.sub(MASK, text)
        return redact_url(text, self.params)

    def filter(self, record: logging.LogRecord) -> bool:
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


def key_param(mode: HttpAuth, key_name: str | None) -> str | None:
    """The query parameter that carries the secret (api_key_query only), for redaction."""
    return (key_name or "api_key") if HttpAuth(mode) is HttpAuth.api_key_query else None


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
    return QueryKeyAuth(key_param(mode, key_name) or "api_key", conn.password)
