"""Slash-command cogs: thin adapters (check → defer → one core call → render)."""
