"""Rendering a template into a plugin tree: the sandboxed Jinja engine (engine) and the escaping filters that
make every client value data in its target language (escape)."""
