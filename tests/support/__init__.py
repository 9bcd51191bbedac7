"""Shared test helpers (local GitHub, PSP, store and Slack servers that speak the documented APIs)."""
