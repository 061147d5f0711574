"""The seeded data set both APIs serve, its visibility clock and ground truth."""

import bisect
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from . import bindbee_data, nexudus_data
from .catalog import Catalog, build_catalog
from .config import DEFAULT_CONNECTION, SandboxConfig
from .event_times import is_empty_day
from .timeutil import DAY_MS, ceil_ms, date_start_ms, from_ms, now_ms, to_us

# (include_raw_data, include_custom_fields, expand) of a plain Bindbee request
DEFAULT_BINDBEE_VARIANT = (False, False, ())
_MAX_VARIANTS = 16  # encoded-bytes caches kept per table (one per query option set)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class ProviderTable:
    """One provider's records in id order (which is also visibility order)."""

    def __init__(self, records: list[Any], ids: list[str], empty_days: list[dt.date]) -> None:
        self.records = records
        self.ids = ids
        self.pos_of = {record_id: pos for pos, record_id in enumerate(ids)}
        self.visible = [r.visible_ms for r in records]
        self.by_event = sorted(range(len(records)), key=lambda pos: records[pos].event_ms)
        self.event_keys = [records[pos].event_ms for pos in self.by_event]
        self.empty_days = empty_days
        self.deleted: frozenset[int] = frozenset()
        self.version = 0  # bumped by deletions; part of every query-cache key
        self.revision = 0  # bumped by corrections (Dataset.modify): the records' fields changed

    def visible_count(self, at_ms: int) -> int:
        """Records visible at `at_ms` are exactly positions below this count."""
        return bisect.bisect_right(self.visible, at_ms)

    def event_positions(self, lo_ms: int, hi_ms: int) -> list[int]:
        """Positions with `lo_ms <= event < hi_ms`, in event order."""
        lo = bisect.bisect_left(self.event_keys, lo_ms)
        hi = bisect.bisect_left(self.event_keys, hi_ms)
        return self.by_event[lo:hi]

    def live(self, positions: Iterable[int], visible_n: int) -> list[int]:
        deleted = self.deleted
        return [p for p in positions if p < visible_n and p not in deleted]


def _hash_share(record_id: str) -> float:
    """A stable number in [0, 1) per id: which records a partial day leaves out."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:4], "big") / 2**32


def _days(config: SandboxConfig) -> list[dt.date]:
    return [config.start_date + dt.timedelta(days=i) for i in range(config.days)]


def connection_seed(seed: int, connection: str) -> int:
    """The seed of a connection's data: `seed` itself for "default" (today's data),
    else a stable mix of both, so every other connection serves its own records."""
    if connection == DEFAULT_CONNECTION:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:connection:{connection}".encode()).digest()[:8], "big")


def _generate(
    config: SandboxConfig, seed: int, catalog: Catalog, provider: str, make: Callable[..., list[Any]]
) -> tuple[list[Any], list[dt.date]]:
    records: list[Any] = []
    empty: list[dt.date] = []
    for day in _days(config):
        if is_empty_day(seed, provider, day) or not config.records_per_day:
            empty.append(day)
            continue
        records += make(seed, day, config.records_per_day, catalog, config.late_fraction)
    return records, empty


def _build_table(config: SandboxConfig, provider: str, seed: int, catalog: Catalog) -> ProviderTable:
    if provider == "bindbee":
        bindbee, empty = _generate(config, seed, catalog, "bindbee", bindbee_data.generate_day)
        bindbee.sort(key=lambda r: r.id)
        return ProviderTable(bindbee, [r.id for r in bindbee], empty)
    nexudus, empty = _generate(config, seed, catalog, "nexudus", nexudus_data.generate_day)
    nexudus = nexudus_data.assign_ids(nexudus_data.remove_member(nexudus) if config.nexudus_member_removed else nexudus)
    return ProviderTable(nexudus, [str(r.id) for r in nexudus], empty)


class Dataset:
    """Generated once per sandbox; `now` and deletions change what is visible.

    One table per (provider, connection). `tables` and `catalog` are the "default"
    connection's, and every `connection` argument defaults to it.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.catalog = build_catalog(config.seed)
        # A connection is its own customer system: its own people, courses and lessons.
        pairs = [(provider, name) for provider, names in config.connections.items() for name in names]
        self._catalogs = {DEFAULT_CONNECTION: self.catalog}
        for _, name in pairs:
            if name not in self._catalogs:
                self._catalogs[name] = build_catalog(connection_seed(config.seed, name))
        self._tables = {
            (p, name): _build_table(config, p, connection_seed(config.seed, name), self._catalogs[name])
            for p, name in pairs
        }
        self.tables = {p: t for (p, name), t in self._tables.items() if name == DEFAULT_CONNECTION}
        self._now = config.now
        self._naive_tz = ZoneInfo(config.nexudus_filter_tz) if config.nexudus_naive_timestamps else None
        self._lock = threading.Lock()
        self._encoded: dict[tuple[str, str, Any], list[bytes | None]] = {}
        self._withheld: dict[tuple[str, str, tuple[str, ...], float], frozenset[int]] = {}

    def table(self, provider: str, connection: str = DEFAULT_CONNECTION) -> ProviderTable:
        table = self._tables.get((provider, connection))
        if table is None:
            raise ValueError(f"no {provider} connection {connection!r}")
        return table

    def catalog_of(self, connection: str = DEFAULT_CONNECTION) -> Catalog:
        return self._catalogs[connection]

    def now(self) -> dt.datetime:
        return from_ms(self.now_ms())

    def now_ms(self) -> int:
        return now_ms() if self._now is None else to_us(self._now) // 1000

    def set_now(self, now: dt.datetime | None) -> None:
        self._now = now

    def visible_count(self, provider: str, connection: str = DEFAULT_CONNECTION) -> int:
        return self.table(provider, connection).visible_count(self.now_ms())

    def empty_days(self, provider: str, connection: str = DEFAULT_CONNECTION) -> list[dt.date]:
        return list(self.table(provider, connection).empty_days)

    def delete(self, provider: str, ids: Iterable[str], connection: str = DEFAULT_CONNECTION) -> None:
        """Remove records for good (Nexudus deletes leave no tombstone)."""
        table = self.table(provider, connection)
        wanted = [str(i) for i in ids]
        unknown = [i for i in wanted if i not in table.pos_of]
        if unknown:
            raise ValueError(f"unknown {provider} ids: {unknown[:5]}")
        with self._lock:
            table.deleted = table.deleted | {table.pos_of[i] for i in wanted}
            table.version += 1

    def modify(self, provider: str, ids: Iterable[str], connection: str = DEFAULT_CONNECTION) -> None:
        """Correct records at the source after they were served (Bindbee: another grade and score,
        `modified_at` now; Nexudus: `UpdatedOn` now, another editor)."""
        table = self.table(provider, connection)
        wanted = [str(i) for i in ids]
        unknown = [i for i in wanted if i not in table.pos_of]
        if unknown:
            raise ValueError(f"unknown {provider} ids: {unknown[:5]}")
        correct = bindbee_data.corrected if provider == "bindbee" else nexudus_data.corrected
        now = self.now_ms()
        with self._lock:
            positions = [table.pos_of[i] for i in wanted]
            for pos in positions:
                table.records[pos] = correct(table.records[pos], now)
            for (cached_provider, cached_connection, _), cache in self._encoded.items():
                if (cached_provider, cached_connection) == (provider, connection):
                    for pos in positions:
                        cache[pos] = None
            table.revision += 1

    def withheld(
        self, provider: str, days: Sequence[str], share: float, connection: str = DEFAULT_CONNECTION
    ) -> frozenset[int]:
        """Positions a connector whose sync failed leaves out: of each of `days` (UTC dates), the
        records whose id hashes below `share` (1: the whole day served empty)."""
        if not days or share <= 0:
            return frozenset()
        key = (provider, connection, tuple(days), share)
        found = self._withheld.get(key)
        if found is None:
            table = self.table(provider, connection)
            out = set()
            for day in days:
                start = date_start_ms(dt.date.fromisoformat(day))
                for pos in table.event_positions(start, start + DAY_MS):
                    if share >= 1 or _hash_share(table.ids[pos]) < share:
                        out.add(pos)
            found = self._withheld[key] = frozenset(out)
        return found

    def ground_truth(
        self, provider: str, start: dt.datetime, end: dt.datetime, connection: str = DEFAULT_CONNECTION
    ) -> list[str]:
        """Ids with event time in [start, end), visible now and not deleted, in id order."""
        table = self.table(provider, connection)
        positions = table.event_positions(ceil_ms(to_us(start)), ceil_ms(to_us(end)))
        return [table.ids[p] for p in sorted(table.live(positions, self.visible_count(provider, connection)))]

    def records(
        self, provider: str, connection: str = DEFAULT_CONNECTION, *, expand: bindbee_data.Expand | None = None
    ) -> list[dict[str, Any]]:
        """Every visible record, in id order, exactly as served by default (Bindbee: or with
        `expand`, relation -> requested fields, as an LMS that honours it serves them)."""
        table = self.table(provider, connection)
        live = table.live(range(len(table.ids)), self.visible_count(provider, connection))
        variant = None if not expand else (False, False, tuple(sorted(expand.items())))
        return [json.loads(b) for b in self.encoded(provider, live, variant, connection=connection)]

    def course_members(self, connection: str = DEFAULT_CONNECTION) -> list[dict[str, Any]]:
        """The Nexudus account's enrolments exactly as `/api/content/coursemembers` lists them, in Id order."""
        return nexudus_data.listed_members(self.catalog_of(connection), removed=self.config.nexudus_member_removed)

    def warm(self, stop: threading.Event) -> None:
        """Encode every record's default form ahead of the first requests."""
        for (provider, connection), table in self._tables.items():
            for start in range(0, len(table.ids), 1000):
                if stop.is_set():
                    return
                self.encoded(provider, range(start, min(start + 1000, len(table.ids))), connection=connection)

    def encoded(
        self, provider: str, positions: Sequence[int], variant: Any = None, *, connection: str = DEFAULT_CONNECTION
    ) -> list[bytes]:
        """JSON bytes of the records at `positions`, encoded once per query variant."""
        if variant is None and provider == "bindbee":
            variant = DEFAULT_BINDBEE_VARIANT
        key = (provider, connection, variant)
        cache = self._encoded.get(key)
        if cache is None:
            cache = [None] * len(self.table(provider, connection).ids)
            with self._lock:
                if len(self._encoded) >= _MAX_VARIANTS * len(self._tables):
                    self._encoded.pop(next(iter(self._encoded)))
                self._encoded[key] = cache
        out = []
        for pos in positions:
            body = cache[pos]
            if body is None:
                body = cache[pos] = dumps(self._encode(provider, connection, pos, variant))
            out.append(body)
        return out

    def _encode(self, provider: str, connection: str, pos: int, variant: Any) -> dict[str, Any]:
        record = self._tables[(provider, connection)].records[pos]
        catalog = self._catalogs[connection]
        if provider == "nexudus":
            return nexudus_data.encode(record, catalog, self._naive_tz)
        raw, custom, expand = variant
        return bindbee_data.encode(record, catalog, raw=raw, custom=custom, expand=dict(expand))
