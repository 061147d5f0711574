"""The guard against mass removal: a re-fetch may not silently empty a stored day.

A provider whose sync failed (Bindbee) or that answers with a partial day keeps
serving fewer rows; replacing the day's file with that answer would lose history
without any check failing. So a re-fetch that would remove more than
`COMPLETIONS_MAX_REMOVED_SHARE` of a stored non-empty day's rows, or empty it,
keeps the old file and fails `no_mass_removal`, until an operator applies it on
purpose: run config `allow_removals: true` or the run tag
`completions/allow_removals=true`.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.providers.checks import EXAMPLES, CheckOutcome

NO_MASS_REMOVAL = "no_mass_removal"
NO_MASS_REMOVAL_DESCRIPTION = (
    "A re-fetch removes at most COMPLETIONS_MAX_REMOVED_SHARE (default 20 %) of a stored non-empty day's rows and "
    "does not empty it; otherwise the previous file is kept until a run with allow_removals applies the removal."
)
ALLOW_REMOVALS_TAG = "completions/allow_removals"


@dataclass(frozen=True)
class RemovalGuard:
    """How much of a stored day a re-fetch may remove, and who allowed more (None: nobody)."""

    max_share: float
    allowed_by: str | None = None


@dataclass(frozen=True)
class Removal:
    """What a re-fetch would remove from a stored day, and whether it is refused."""

    previous_rows: int
    current_rows: int
    removed: int
    sample_ids: tuple[str, ...]
    guard: RemovalGuard

    def outcome(self) -> CheckOutcome:
        details: dict[str, object] = {
            "previous_rows": self.previous_rows,
            "fetched_rows": self.current_rows,
            "rows_removed": self.removed,
            "max_removed_share": self.guard.max_share,
            "removed_ids": list(self.sample_ids),
        }
        return CheckOutcome(
            self.removed if self.refused else 0, self.sample_ids if self.refused else (), details | self.metadata()
        )

    def metadata(self) -> dict[str, object]:
        """Materialization metadata of a day written although the guard would have refused it: who
        applied the removal. A removal within the share needs nobody's leave, so it names nobody."""
        if self.over_limit and self.guard.allowed_by:
            return {"removals_applied_by": self.guard.allowed_by}
        return {}

    @property
    def over_limit(self) -> bool:
        """Whether it would empty a stored non-empty day or remove more than the share allows."""
        return self.previous_rows > 0 and (
            self.current_rows == 0 or self.removed > self.guard.max_share * self.previous_rows
        )

    @property
    def refused(self) -> bool:
        return self.over_limit and self.guard.allowed_by is None


def judge(previous: pa.Table | None, current: pa.Table, id_column: str, guard: RemovalGuard) -> Removal:
    """The removal replacing `previous` (the stored day's ids, None if never written) with `current` means."""
    if previous is None or previous.num_rows == 0:
        return Removal(0, current.num_rows, 0, (), guard)
    before = pc.unique(previous[id_column].cast(pa.string()))
    after = pc.unique(current[id_column].cast(pa.string()))
    gone = before.filter(pc.invert(pc.is_in(before, value_set=after)))
    gone = gone.take(pc.sort_indices(gone))
    return Removal(len(before), len(after), len(gone), tuple(gone.slice(0, EXAMPLES).to_pylist()), guard)


def removals_allowed_by(config_allows: bool, tags: Mapping[str, str]) -> str | None:
    """Who allowed this run to apply removals over the limit: its run config, its run tag, or nobody."""
    if config_allows:
        return "run config"
    if tags.get(ALLOW_REMOVALS_TAG, "").strip().lower() == "true":
        return "run tag"
    return None


def check_spec(asset: dg.AssetKey, partitions_def: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        NO_MASS_REMOVAL, asset=asset, description=NO_MASS_REMOVAL_DESCRIPTION, partitions_def=partitions_def
    )
