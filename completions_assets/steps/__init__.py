"""What runs inside a step: fetching connections side by side, writing days and their
metadata, the mass-removal guard, the merge's reads, the audit, and what a step process is
forked from. The definitions in `completions_assets.defs` call it; it never imports them."""
