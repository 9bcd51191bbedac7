"""Putting a plugin on a store: releases, the lease lock, history and rollback (release), the SFTP store and
its connection pool (sftp), the HTTP health gate (health), the wiring from a client's store targets to a
health-gated deploy (stores), and deploys side by side, one thread per store host (parallel)."""
