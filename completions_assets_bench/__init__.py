"""`make bench`: how close the pipeline comes to a bare fetch of the same data (SPEC section 10).

`python -m completions_assets_bench` prints its tables and writes
docs/benchmarks.md. Modules: `workload` (what is fetched, and how a range is
split), `sandbox` (the sandbox process and its counters), `procs` (measured
child processes), `ceiling` (a), `pipeline` (b), `dagster_run` (c),
`throughput`, `ratelimited` and `experiments` (the measurements), `machine`,
`report` and `findings` (the Markdown).
"""
