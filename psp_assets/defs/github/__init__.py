"""GitHub releases: each plugin build published in its client's organization (github.com or Enterprise)."""

from psp_assets.defs.github.assets import github_release
from psp_assets.defs.github.resources import GitHubPublisher

assets = [github_release]
asset_checks = []
jobs = []
schedules = []
sensors = []
resources = {"github": GitHubPublisher()}
