"""The providers: each module declares one `Provider`; PROVIDERS is what the code location serves."""

from completions_assets.providers.bindbee import BINDBEE
from completions_assets.providers.nexudus import NEXUDUS
from completions_assets.providers.provider import Provider

PROVIDERS: tuple[Provider, ...] = (BINDBEE, NEXUDUS)
