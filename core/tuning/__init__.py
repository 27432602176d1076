"""Per-guild instruction tuning: datasets, LoRA/QLoRA training, jobs, versioned adapters, hot-swap.

`data` validates and splits instruction pairs; `lora` trains one adapter (`run_lora_job`);
`jobs` and `registry` keep jobs and adapter versions in Postgres; `worker` runs jobs;
`hotswap` brings an activated version into a running engine without a restart.
`tuner` is what `guru tune start` and the bot's `/tune start` share (validate, then queue).
"""
