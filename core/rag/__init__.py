"""Knowledge base for /ask and /explain: ingest → embed → store → retrieve → cited answer."""
