"""The functional core: plain Python, no Dagster import. Every module here is testable on its own."""
