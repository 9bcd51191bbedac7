"""GitHub: each plugin build published as a release in its client's organization (github.com or
Enterprise), and its source as a pull request to the client's repository."""

from psp_assets.defs.github.assets import client_repository, github_release
from psp_assets.defs.github.resources import GitHubPublisher

assets = [github_release, client_repository]
asset_checks = []
jobs = []
schedules = []
sensors = []
resources = {"github": GitHubPublisher()}
