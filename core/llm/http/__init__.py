"""HTTP: `guru serve` (OpenAI-compatible server) and the remote backend that talks to one."""
