"""Benchmarks behind the speed and memory claims in docs/benchmarks.md; run with `idattn bench <name>`.

Each module exposes `run(args) -> list[dict]`: rows of one measurement each, which `idattn bench`
prints as a table and appends to results/bench_<name>.csv with the machine and the command.
"""
