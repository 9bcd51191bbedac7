"""The typed values the plugin assets hand to each other (the "handles"): small pydantic models that name
the heavy outputs the core writes itself (rendered trees, reports, archives) and carry the lineage.

Every client|platform handle has one `Lineage` (template version and hash, config hash, plugin version,
build): the one definition of the lineage keys every materialization records. The handles that deploy
or build from a config carry the validated `ClientConfig` itself, so no stage parses it again.

The Dagster IO manager stores each handle as JSON (`to_json`) and reads it back through its model
(`load_handle`). A handle stored by an older version (flat lineage keys, a test report nesting its
rendered source) is read into the current shape; one that cannot be is refused with a `HandleError`
naming the asset, the partition and what to re-materialize.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from psp_assets.core.config.model import ClientConfig
from psp_assets.core.errors import PspError
from psp_assets.core.package import Artifact, load_artifact

RUN_ID = "run_id"  # in every stored handle: the run that wrote it


class HandleError(PspError):
    """A stored handle cannot be read as the value its asset produces (written by another version)."""


class Lineage(BaseModel):
    """What an incident traces a plugin back to; every plugin materialization records these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    template_version: str | None = None
    template_hash: str | None = None
    config_hash: str | None = None
    plugin_version: str | None = None
    build: str | None = None

    def metadata(self) -> dict[str, str]:
        """The lineage as materialization metadata: the keys that are known."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    @classmethod
    def pick(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The lineage keys of a flat (older) handle."""
        return {k: data[k] for k in LINEAGE_KEYS if k in data}


LINEAGE_KEYS: tuple[str, ...] = tuple(Lineage.model_fields)


class Handle(BaseModel):
    """A stored asset value. `run_id` is stamped by the IO manager: the run that wrote it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ASSET: ClassVar[str] = ""

    run_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def fields(self) -> dict[str, Any]:
        """The handle's values (not its run stamp), as they are: to make a handle of a later stage from it."""
        return {k: getattr(self, k) for k in type(self).model_fields if k != RUN_ID}


class TemplateHandle(Handle):
    """plugin_template[platform]: the template a platform's plugins are rendered from."""

    ASSET: ClassVar[str] = "plugin_template"

    platform: str
    template_version: str
    template_hash: str
    php_versions: list[str] = Field(default_factory=list)
    platform_versions: list[str] = Field(default_factory=list)
    templates_dir: str

    @property
    def lineage(self) -> Lineage:
        return Lineage(template_version=self.template_version, template_hash=self.template_hash)


class ConfigHandle(Handle):
    """client_config[client]: the client's validated configuration, typed."""

    ASSET: ClassVar[str] = "client_config"

    client: str
    config_hash: str
    path: str  # the client file it was read from
    enabled_platforms: list[str]
    config: ClientConfig

    @property
    def lineage(self) -> Lineage:
        return Lineage(config_hash=self.config_hash)


class PluginHandle(Handle):
    """A client|platform asset's value: whose plugin, and its lineage."""

    client: str
    platform: str
    lineage: Lineage

    @model_validator(mode="before")
    @classmethod
    def _flat_lineage(cls, data: Any) -> Any:
        # handles stored before the lineage was its own model kept its keys at the top level
        if isinstance(data, dict) and "lineage" not in data and any(k in data for k in LINEAGE_KEYS):
            data = {k: v for k, v in data.items() if k not in LINEAGE_KEYS} | {"lineage": Lineage.pick(data)}
        return data


class Sourced(PluginHandle):
    """A plugin handle that later stages build or deploy from: the config and templates it was made from."""

    config: ClientConfig
    config_path: str  # the client file the config was read from
    templates_dir: str | None = None  # the templates plugin_template recorded (a GitHub checkout, or local)


class TreeRef(BaseModel):
    """The rendered files on disk, identified by content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    tree_sha256: str
    file_count: int


class RenderedHandle(Sourced):
    """rendered_source[client|platform]: the rendered plugin source."""

    ASSET: ClassVar[str] = "rendered_source"

    tree: TreeRef

    @property
    def release_id(self) -> str:
        return f"{self.lineage.plugin_version}-{self.lineage.build}"

    @model_validator(mode="before")
    @classmethod
    def _flat_tree(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tree" not in data and "tree_sha256" in data:
            tree = {k: data[k] for k in TreeRef.model_fields if k in data}
            data = {k: v for k, v in data.items() if k not in {*TreeRef.model_fields, "release_id"}} | {"tree": tree}
        return data


class TestReportHandle(RenderedHandle):
    """test_report[client|platform]: where the report of the rendered source is, and whether it passed."""

    __test__ = False  # not a pytest class
    ASSET: ClassVar[str] = "test_report"

    report_path: str
    passed: bool

    @model_validator(mode="before")
    @classmethod
    def _nested_rendered(cls, data: Any) -> Any:
        # older test reports nested the whole rendered_source handle
        if isinstance(data, dict) and isinstance(data.get("rendered"), dict):
            rendered = data["rendered"]
            data = {k: v for k, v in data.items() if k != "rendered"}
            data["tree"] = {k: rendered[k] for k in TreeRef.model_fields if k in rendered}
            for key in ("config", "config_path", "templates_dir"):
                if key in rendered:
                    data.setdefault(key, rendered[key])
        return data

    @property
    def rendered(self) -> RenderedHandle:
        """The rendered source this report is of."""
        return RenderedHandle(**{k: getattr(self, k) for k in RenderedHandle.model_fields})


class BuiltHandle(Sourced):
    """built_artifact[client|platform]: the installable archive."""

    ASSET: ClassVar[str] = "built_artifact"

    release_id: str
    artifact_path: str
    sha256: str
    size: int

    def artifact(self) -> Artifact:
        """The archive on disk, verified against its manifest."""
        return load_artifact(Path(self.artifact_path))


class TargetRecord(BaseModel):
    """One store target of a deploy, as deployed_store records it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str
    deployed_version: str | None = None
    previous_version: str | None = None
    health: str | None = None
    rolled_back: bool = False
    noop: bool = False
    error: str | None = None
    steps: list[str] = Field(default_factory=list)


class DeployedHandle(BuiltHandle):
    """deployed_store[client|platform]: the artifact deployed and what each store target serves."""

    ASSET: ClassVar[str] = "deployed_store"

    targets: list[TargetRecord] = Field(default_factory=list)


class ReleaseHandle(PluginHandle):
    """github_release[client|platform]: the artifact as a release in the client's GitHub repository."""

    ASSET: ClassVar[str] = "github_release"

    release_id: str
    sha256: str
    repository: str
    tag: str
    release_url: str
    github_release_id: int
    assets: list[dict[str, Any]] = Field(default_factory=list)


class SourceRepoHandle(PluginHandle):
    """client_repository[client|platform]: the plugin's source as a pull request in the client's repository."""

    ASSET: ClassVar[str] = "client_repository"

    repository: str
    branch: str
    base_branch: str
    commit_sha: str
    pull_request_url: str | None = None
    pull_request: int | None = None
    files: list[str] = Field(default_factory=list)


HANDLES: dict[str, type[Handle]] = {
    model.ASSET: model
    for model in (
        TemplateHandle,
        ConfigHandle,
        RenderedHandle,
        TestReportHandle,
        BuiltHandle,
        DeployedHandle,
        ReleaseHandle,
        SourceRepoHandle,
    )
}


def load_handle(asset: str, partition: str, data: Any, where: str) -> Any:
    """A stored value of `asset` as its handle model (values of assets without one as stored). Raises
    HandleError naming the file (`where`), what does not fit and what to re-materialize."""
    model = HANDLES.get(asset)
    if model is None:
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise HandleError(
            f"{where}: the stored {asset}[{partition}] is not a {model.__name__} ({problems}); it was written by "
            f"another version of the platform: re-materialize {asset}[{partition}]"
        ) from None
