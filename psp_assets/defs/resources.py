import json
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg

from psp_assets.core.php import NativePhp, PhpRuntime, PhpRuntimes, shared_runtimes
from psp_assets.core.pipeline import Paths


class PspWorkspace(dg.ConfigurableResource):
    """Where client configs, templates and outputs live. Empty fields fall back to the environment
    contract (PSP_CLIENT_CONFIGS_DIR, PSP_TEMPLATES_DIR, PSP_DATA_DIR, PSP_STORES_DIR)."""

    configs_dir: str = ""
    templates_dir: str = ""
    data_dir: str = ""
    stores_dir: str = ""

    @property
    def paths(self) -> Paths:
        base = Paths.from_env()
        return Paths(
            configs_dir=Path(self.configs_dir).resolve() if self.configs_dir else base.configs_dir,
            templates_dir=Path(self.templates_dir).resolve() if self.templates_dir else base.templates_dir,
            data_dir=Path(self.data_dir).resolve() if self.data_dir else base.data_dir,
            stores_dir=Path(self.stores_dir).resolve() if self.stores_dir else base.stores_dir,
        )


class PhpResource(dg.ConfigurableResource):
    """The PHP runtimes the checks run on: the machine's PHP (`runtime`, for deploy health checks) and one
    PHP-as-WebAssembly runtime per version 7.4 ... 8.5 (`runtimes`), each booted on first use and shared
    by every partition of the run: at most one boot per version per run. With `shared` (default) later
    runs in the same process reuse them too (in-process fleets, tests); otherwise they stop with the run."""

    binary: str = ""
    matrix: bool = True  # lint and contract tests on every PHP version a template declares (else machine PHP only)
    shared: bool = True

    @cached_property
    def runtime(self) -> PhpRuntime:
        return NativePhp(self.binary or None)

    @cached_property
    def runtimes(self) -> PhpRuntimes:
        return shared_runtimes() if self.shared else PhpRuntimes()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if not self.shared and "runtimes" in self.__dict__:
            self.runtimes.close()


class JsonHandleIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition's small JSON handle (paths, hashes, versions) under PSP_DATA_DIR.

    The heavy outputs (trees, reports, archives) are files the core writes itself; what passes between
    assets is the handle that names them, readable by a person after an incident. A multi-partition
    run stores one handle per partition.
    """

    base_dir: str = ""

    def _dir(self, context: dg.OutputContext | dg.InputContext) -> Path:
        base = Path(self.base_dir) if self.base_dir else Paths.from_env().data_dir / "handles"
        return base.joinpath(*context.asset_key.path)

    @staticmethod
    def _file(directory: Path, partition: str) -> Path:
        return directory / (partition.replace("|", "__") + ".json")

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
            tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))
            tmp.replace(path)

    def load_input(self, context: dg.InputContext) -> Any:
        directory = self._dir(context)
        keys = context.asset_partition_keys if context.has_asset_partitions else ["__all__"]
        loaded = {}
        for key in keys:
            path = self._file(directory, str(key))
            if not path.is_file():
                raise dg.Failure(f"{'/'.join(context.asset_key.path)}[{key}] has not been materialized yet ({path})")
            loaded[str(key)] = json.loads(path.read_text())
        return loaded[str(keys[0])] if len(keys) == 1 else loaded
