"""A client's configuration: the pydantic model of client_configs/*.yaml and its loading (model), the
plugin identity derived from it (identity), the fleet of every config in a directory with the checks that
span configs (fleet), and the generated config reference (reference)."""
