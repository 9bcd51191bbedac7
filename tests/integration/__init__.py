"""Real services (sshd and SFTP deploys with their fault campaigns, WordPress, PostgreSQL)."""
