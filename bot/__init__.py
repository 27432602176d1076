"""Guru's Discord adapter: cogs, rendering and checks over `core.Services`."""
