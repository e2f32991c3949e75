"""Side-by-side benchmarks: taskpulse against the tool a user would otherwise run.

Scripts, not tests: each prints a table (taskpulse | peer | ratio | target) measured in the same run
and writes JSON to ``bench/results/``. See ``bench/README.md``.
"""
