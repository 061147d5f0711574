"""Structural redaction of secrets in URLs, headers and text bound for logs or errors.

One set of sensitive names drives everything: a header, query parameter, form
field or JSON key with one of these names never shows its value. The known
secret values of a client are masked too, as a second line of defence against
a provider echoing a token back in an error body.
"""

import re
from collections.abc import Iterable

import httpx

REDACTED = "[REDACTED]"

# Compared after lower-casing and mapping "-" to "_".
SENSITIVE_NAMES = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "x_connector_token",
        "connector_token",
        "x_api_key",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "password",
        "client_secret",
        "secret",
        "totp",
    }
)

BODY_SNIPPET_CHARS = 300


def is_sensitive(name: str) -> bool:
    return name.lower().replace("-", "_") in SENSITIVE_NAMES


def _name_pattern() -> str:
    variants = {v for n in SENSITIVE_NAMES for v in (n, n.replace("_", "-"))}
    return "|".join(sorted((re.escape(v) for v in variants), key=len, reverse=True))


_NAMES = _name_pattern()
_JSON_PAIR = re.compile(rf'("(?:{_NAMES})"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE)
_FORM_PAIR = re.compile(rf"(?<![\w-])((?:{_NAMES})=)[^&\s\"']+", re.IGNORECASE)
_HEADER_LINE = re.compile(rf"(?<![\w-])((?:{_NAMES})\s*:\s*)[^\s,;\"']+", re.IGNORECASE)
_SCHEME_CREDENTIALS = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def sanitize_url(url: httpx.URL | str) -> str:
    """The URL without user info and with sensitive query values masked."""
    parsed = httpx.URL(str(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    params = parsed.params
    if any(is_sensitive(name) for name in params.keys()):
        masked = [(k, REDACTED if is_sensitive(k) else v) for k, v in params.multi_items()]
        parsed = parsed.copy_with(params=masked)
    return str(parsed)


class Redactor:
    """Masks sensitive name/value pairs and the given secret values in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | None) -> None:
        """Masks `secret` from now on (e.g. a token obtained at run time)."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            # Longest first, so a secret containing another is masked whole; the
            # list is replaced, never mutated, so readers on other threads are safe.
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def text(self, text: str) -> str:
        text = _JSON_PAIR.sub(rf'\1"{REDACTED}"', text)
        text = _FORM_PAIR.sub(rf"\1{REDACTED}", text)
        text = _HEADER_LINE.sub(rf"\1{REDACTED}", text)
        text = _SCHEME_CREDENTIALS.sub(rf"\1 {REDACTED}", text)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def url(self, url: httpx.URL | str) -> str:
        return self.text(sanitize_url(url))

    def body(self, response: httpx.Response, limit: int = BODY_SNIPPET_CHARS) -> str:
        """The first `limit` characters of a response body, redacted, on one line."""
        try:
            raw = response.text
        except (httpx.ResponseNotRead, UnicodeDecodeError):
            return "<body not available>"
        snippet = " ".join(raw[: limit * 2].split())
        snippet = self.text(snippet)
        if len(snippet) > limit:
            snippet = snippet[:limit] + "…"
        return snippet or "<empty body>"


class PageLabel:
    """`page N (GET redacted-url)` for messages, built only when one is shown: redacting every
    page's URL up front costs more than parsing its records into Arrow."""

    __slots__ = ("_number", "_redactor", "_text", "_url")

    def __init__(self, number: int, url: httpx.URL, redactor: Redactor) -> None:
        self._number = number
        self._url = url
        self._redactor = redactor
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = f"page {self._number} (GET {self._redactor.url(self._url)})"
        return self._text

    def __repr__(self) -> str:
        return repr(str(self))


Label = str | PageLabel  # what a message names: a request, a page
