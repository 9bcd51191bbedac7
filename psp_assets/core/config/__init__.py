"""A client's configuration: the pydantic model of client_configs/*.yaml and its loading (model), the
plugin identity derived from it (identity), and the generated config reference (reference)."""
