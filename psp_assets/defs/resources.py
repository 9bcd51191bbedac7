import json
import os
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg

from psp_assets.core.handles import RUN_ID, Handle, HandleError, Sourced, TemplateHandle, load_handle
from psp_assets.core.runtimes import php_service
from psp_assets.core.runtimes.php import NativePhp, PhpRuntime, PhpRuntimes
from psp_assets.core.runtimes.php_service import shared_runtimes
from psp_assets.core.workspace import Paths


class PspWorkspace(dg.ConfigurableResource):
    """Where client configs, templates and outputs live. Empty fields fall back to the environment
    contract (PSP_CLIENT_CONFIGS_DIR, PSP_TEMPLATES_DIR, PSP_DATA_DIR, PSP_STORES_DIR, PSP_CONTRACT_FILE)."""

    configs_dir: str = ""
    templates_dir: str = ""
    data_dir: str = ""
    stores_dir: str = ""
    contract_file: str = ""

    @property
    def paths(self) -> Paths:
        base = Paths.from_env()
        return Paths(
            configs_dir=Path(self.configs_dir).resolve() if self.configs_dir else base.configs_dir,
            templates_dir=Path(self.templates_dir).resolve() if self.templates_dir else base.templates_dir,
            data_dir=Path(self.data_dir).resolve() if self.data_dir else base.data_dir,
            stores_dir=Path(self.stores_dir).resolve() if self.stores_dir else base.stores_dir,
            contract_file=Path(self.contract_file).resolve() if self.contract_file else base.contract_file,
        )

    def lineage_paths(self, handle: TemplateHandle | Sourced) -> Paths:
        """The workspace, with the templates directory the lineage recorded: a plugin is rendered, tested,
        built and deployed from the template plugin_template recorded (a GitHub checkout, or the local one)."""
        recorded = handle.templates_dir
        return replace(self.paths, templates_dir=Path(recorded)) if recorded else self.paths


MATRIX_ENV = "PSP_PHP_MATRIX"


class PhpResource(dg.ConfigurableResource):
    """The PHP runtimes the checks run on: the machine's PHP (`runtime`, for deploy health checks) and one
    PHP-as-WebAssembly runtime per version 7.4 ... 8.5 (`runtimes`), each booted on first use and shared
    by every partition of the run: at most one boot per version per run. With `shared` (default) later
    runs in the same process reuse them too (in-process fleets, tests); otherwise they stop with the run.
    `service` says whether they are the machine's long-lived runtime service (core/runtimes/php_service.py:
    `connect` when it runs, `auto` starting it on first use, `off`; empty: $PSP_PHP_SERVICE, else
    `connect`); without an answering service the runtimes boot in the run's process as before."""

    binary: str = ""
    # lint and contract tests on every PHP version a template declares (else machine PHP only);
    # PSP_PHP_MATRIX=0 turns it off for the whole process (`on_every_php`)
    matrix: bool = True
    shared: bool = True
    service: str = ""

    @property
    def on_every_php(self) -> bool:
        """Whether test_report runs on every PHP version a template declares: `matrix`, unless
        $PSP_PHP_MATRIX is `0` (machine PHP only, as `make test-fast` runs the Dagster tests; the nightly
        compatibility matrix and tests/compat/ still cover every version). `1` or unset: `matrix`."""
        value = os.environ.get(MATRIX_ENV, "").strip()
        if value not in ("", "0", "1"):
            raise dg.Failure(f"{MATRIX_ENV}={value!r}: expected 0 (machine PHP only) or 1 (every declared version)")
        return self.matrix and value != "0"

    @cached_property
    def runtime(self) -> PhpRuntime:
        return NativePhp(self.binary or None)

    @cached_property
    def runtimes(self) -> PhpRuntimes:
        if self.shared:
            return shared_runtimes(self.service or None)
        if php_service.mode(self.service or None) == "off":
            return PhpRuntimes()
        return php_service.service_runtimes(autostart=php_service.mode(self.service or None) == "auto")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if not self.shared and "runtimes" in self.__dict__:
            self.runtimes.close()


class JsonHandleIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition's small JSON handle (paths, hashes, versions) under PSP_DATA_DIR.

    The plugin assets' handles are typed (core/handles.py): they are written through their model and read
    back into it (a handle an older version stored is read into the current shape, or refused with a
    message saying what to re-materialize); other assets' values are stored as plain JSON. The heavy
    outputs (trees, reports, archives) are files the core writes itself; what passes between assets is
    the handle that names them, readable by a person after an incident. A multi-partition
    run stores one handle per partition it produced, each stamped with the run that wrote it; loading a
    range leaves out the partitions that have none (and, from a step of the same run, the ones that run
    did not produce: an older handle is not this run's result).
    """

    base_dir: str = ""

    def _dir(self, context: dg.OutputContext | dg.InputContext) -> Path:
        base = Path(self.base_dir) if self.base_dir else Paths.from_env().data_dir / "handles"
        return base.joinpath(*context.asset_key.path)

    @staticmethod
    def _file(directory: Path, partition: str) -> Path:
        return directory / (partition.replace("|", "__") + ".json")

    def read(self, asset: str, partition: str) -> Any:
        """One partition's handle as last stored, None when it was never materialized: for code that
        reads many partitions itself (the fleet rollout) rather than through an input. Raises HandleError
        when it was stored by a version whose handle cannot be read."""
        base = Path(self.base_dir) if self.base_dir else Paths.from_env().data_dir / "handles"
        path = self._file(base / asset, partition)
        return _load(asset, partition, path) if path.is_file() else None

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        directory = self._dir(context)
        directory.mkdir(parents=True, exist_ok=True)
        keys = context.asset_partition_keys if context.has_asset_partitions else ["__all__"]
        items = obj.items() if len(keys) > 1 else [(keys[0], obj)]
        for key, value in items:
            path = self._file(directory, str(key))
            tmp = path.with_suffix(".tmp")
            if isinstance(value, Handle):
                stamped: Any = value.model_copy(update={RUN_ID: context.run_id}).to_json()
            else:
                stamped = {**value, RUN_ID: context.run_id} if isinstance(value, dict) else value
            tmp.write_text(json.dumps(stamped, indent=2, sort_keys=True, default=str))
            tmp.replace(path)

    def load_input(self, context: dg.InputContext) -> Any:
        directory = self._dir(context)
        keys = context.asset_partition_keys if context.has_asset_partitions else ["__all__"]
        if len(keys) > 1:
            return self._load_range(context, directory, [str(k) for k in keys])
        path = self._file(directory, str(keys[0]))
        if not path.is_file():
            asset = "/".join(context.asset_key.path)
            raise dg.Failure(
                f"{asset}[{keys[0]}] has not been materialized yet, so this run cannot start its work: materialize "
                f"{asset}[{keys[0]}] first (select it in the asset graph, or let its sensor do it: "
                "client_configs_sensor records every valid client file, template_change_sensor every template), "
                "then launch this run again",
                metadata={"missing_upstream": f"{asset}[{keys[0]}]", "expected_at": str(path)},
                allow_retries=False,
            )
        return self._load_one(context, str(keys[0]), path)

    def _load_one(self, context: dg.InputContext, key: str, path: Path) -> Any:
        asset = "/".join(context.asset_key.path)
        try:
            return _load(asset, key, path)
        except HandleError as exc:
            raise dg.Failure(str(exc), metadata={"stored_at": str(path)}, allow_retries=False) from None

    def _load_range(self, context: dg.InputContext, directory: Path, keys: list[str]) -> dict[str, Any]:
        # the run whose step wrote this input: this run, or the run it re-executes; none (or a
        # placeholder) when the input is loaded from what earlier runs stored
        source_run = None
        if context.upstream_output is not None:
            try:
                source_run = context.upstream_output.run_id
            except dg.DagsterInvariantViolationError:
                source_run = None
            if source_run is not None and not context.instance.has_run(source_run):
                source_run = None
        loaded = {}
        for key in keys:
            path = self._file(directory, key)
            if path.is_file():
                handle = self._load_one(context, key, path)
                stamped = handle.run_id if isinstance(handle, Handle) else handle.get(RUN_ID)
                if source_run is None or stamped == source_run:
                    loaded[key] = handle
        return loaded


def _load(asset: str, partition: str, path: Path) -> Any:
    """A stored value: the asset's handle model when it has one (core/handles.py), else the JSON as stored."""
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise HandleError(f"{path}: the stored {asset}[{partition}] is not JSON ({exc}); re-materialize it") from None
    return load_handle(asset, partition, data, str(path))
