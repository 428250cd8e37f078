"""
Benchmarks (not tests), each a script with the project's configurator; run them from the repository root:

    python -m bench.speed         # decoding (exact, approximate, vs transformers), train and GRPO steps, MFU
    python -m bench.estimators    # variance of the GRPO log-prob estimators across mask draws
    python -m bench.sandbox       # programs scored per second by the sandbox vs one process per assert
    python -m bench.load          # peak host memory when loading a large checkpoint
"""
