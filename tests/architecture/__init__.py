"""The shape of the code, checked from its source: import layers, package docstrings, the README layout."""
