"""The providers: each module declares one `Provider`; PROVIDERS is what the code location serves."""

from completions_assets.providers.bindbee import BINDBEE
from completions_assets.providers.declaration import Provider
from completions_assets.providers.nexudus import NEXUDUS

PROVIDERS: tuple[Provider, ...] = (BINDBEE, NEXUDUS)
