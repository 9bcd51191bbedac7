"""The github area: plugin builds published as releases and pull requests in each client's organization."""

import dagster as dg

from psp_assets.defs.github.assets import client_repository, github_release
from psp_assets.defs.github.resources import GitHubPublisher


@dg.definitions
def github() -> dg.Definitions:
    return dg.Definitions(assets=[github_release, client_repository], resources={"github": GitHubPublisher()})
