"""A grounded-answering adapter for the default model, trained RAFT-style (issue #17 item 6).

`python -m bench.grounded build` writes the dataset (corpora that are not the benchmark's: the
installed Python packages' own descriptions and /usr/share/doc READMEs), `python -m
bench.grounded train` trains it through core.tuning's `run_lora_job` into a versioned adapter
outside any guild, which `GURU_GROUNDED_ADAPTER` serves (core/services.py).
"""
