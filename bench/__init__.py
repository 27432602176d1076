"""Benchmarks behind `guru bench …` (also runnable as `python -m bench.<name>`).

Each benchmark module offers `add_arguments(parser)` and `run(args, settings) -> int`, which
`core/cli/bench.py` wires up as a subcommand. They are deliberately outside the pytest suite:
they take minutes and their numbers depend on how busy the host is.
"""
