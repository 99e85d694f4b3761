"""The benchmarks are plain scripts run with ``python``; pytest must not collect them."""

collect_ignore_glob = ["*.py"]
