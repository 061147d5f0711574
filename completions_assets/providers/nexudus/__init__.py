"""Nexudus: its declaration (lessons.py), its token flow (auth.py) and its enrolments (members.py)."""

from completions_assets.providers.nexudus.lessons import NEXUDUS, NexudusSettings

__all__ = ["NEXUDUS", "NexudusSettings"]
