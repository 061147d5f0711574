"""What a route hands to the HTTP layer: status, headers and body bytes."""

from dataclasses import dataclass, field
from typing import Any

from .data import dumps

JSON = "application/json"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Write only this many body bytes after a full Content-Length, then close.
    cut_at: int | None = None
    # The sandbox connection whose credentials the request carried (for per-connection stats).
    connection: str | None = None


def json_reply(status: int, value: Any, headers: dict[str, str] | None = None, *, content_type: str = JSON) -> Reply:
    return Reply(status, dumps(value), {"Content-Type": content_type, **(headers or {})})
