"""The language model: loading, the batching engine, the remote backend and the HTTP server."""
