"""GitHub: publishing built plugins as releases and the shared session with its retries (releases), the
client's plugin repository and its CI (client_repo), and templates read from a GitHub repository
(template_repo)."""
