"""Guru's core: everything except the Discord adapter (see ../shared/DESIGN.md)."""
