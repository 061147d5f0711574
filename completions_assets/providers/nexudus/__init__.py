"""Nexudus: the client and resource (client.py) and its token flow (auth.py)."""

from completions_assets.providers.nexudus.client import NEXUDUS, NexudusClient, NexudusResource

__all__ = ["NEXUDUS", "NexudusClient", "NexudusResource"]
