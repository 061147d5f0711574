"""`make bench`: how close the pipeline comes to a bare fetch of the same data (docs/benchmarks.md says what each section measures).

`python -m completions_assets_bench` prints its tables and writes
docs/benchmarks.md. Modules: `workload` (the sandboxes, ranges and the
ceiling's windows; the windows a run requested and their minimum), `sandbox`
(the sandbox process, its counters and query log), `procs` (measured child
processes), `ceiling` (a), `pipeline` (b), `dagster_run` and `run_config`
(c, with run config derived from the definitions), `throughput`,
`ratelimited` and `experiments` (the measurements; `earlier_code` checks out an
earlier commit's package for them), `many_connections` (the "connections"
section: the shipped code beside the code before issue 19, with
`connection_sets` declaring the connections and `load_time` timing the code
location's load), `machine`, `report` and `findings` (the Markdown).
"""
