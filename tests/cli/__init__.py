"""The `psp` command, hostile input included."""
