"""Sources that change: websites and git repositories' docs folders, re-synced on a schedule.

A re-sync fetches conditionally (ETag / Last-Modified, git blob ids) and re-embeds only the
pages whose content changed, through the same `Ingestor` as every other document.
"""
