"""Plugin lineage: assets, jobs and sensors for every client x platform plugin (definitions.py lists them)."""
