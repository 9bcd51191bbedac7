"""The platforms' PHP stand-ins as files, each linted."""
