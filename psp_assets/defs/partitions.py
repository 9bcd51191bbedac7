import dagster as dg

from psp_assets.core.templates.spec import PLATFORMS

client_partitions = dg.DynamicPartitionsDefinition(name="client")
platform_partitions = dg.StaticPartitionsDefinition(list(PLATFORMS))
# Key strings read "<client>|<platform>", e.g. "nordbank|woocommerce".
plugin_partitions = dg.MultiPartitionsDefinition({"client": client_partitions, "platform": platform_partitions})


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["client"], dims["platform"]
    client, _, platform = str(key).partition("|")
    return client, platform
