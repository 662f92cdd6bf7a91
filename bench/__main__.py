"""``python -m bench``: the one benchmark run (see bench/runner.py; --quick for ~30 s)."""

from bench.runner import main

main()
