"""The PostgreSQL instance with its daemon, queue and restarts."""
