"""A fleet: every client config of a directory, the valid ones and the problems of the others, with the
checks that span configs (unique ids, plugin identities that would clash in one store) and, in
`validate_fleet`, the checks that need the templates (a template per enabled platform, a complete
translation catalog per locale). `psp validate`, `psp fleet`, the `client_config` asset and its sensor
all call `validate_fleet`: a config one of them refuses, all refuse, in the same words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from psp_assets.core.config.identity import clash_problem
from psp_assets.core.config.model import CONFIG_SUFFIXES, ClientConfig, parse_client, read_client_file
from psp_assets.core.errors import ConfigError, PspError
from psp_assets.core.i18n import load_catalog
from psp_assets.core.templates.spec import SHARED_DIR, available_platforms


@dataclass(frozen=True)
class LoadedClient:
    config: ClientConfig
    path: Path

    @property
    def id(self) -> str:
        return self.config.id


@dataclass
class Fleet:
    """Every client config in a directory: the valid ones, and the problems of the others."""

    clients: dict[str, LoadedClient] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    # file label -> the client id it names, for files that are YAML mappings with a text `id`, valid or not
    claims: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ConfigError([p for problems in self.problems.values() for p in problems])

    def files_of(self, client_id: str) -> list[str]:
        """Labels of the invalid files that belong to `client_id`: they name it as their id, or are named
        after it (<id>.yaml) when their id cannot be read."""
        return [
            label for label in self.problems if self.claims.get(label) == client_id or Path(label).stem == client_id
        ]

    def client(self, client_id: str) -> ClientConfig:
        if client_id not in self.clients:
            own = self.files_of(client_id)
            if own:
                lines = [p for label in own for p in self.problems[label]]
                raise ConfigError([*lines, f"client {client_id!r}: its config is invalid ({', '.join(own)})"])
            known = ", ".join(sorted(self.clients)) or "none"
            raise ConfigError([f"client {client_id!r}: no valid config found (valid clients: {known})"])
        return self.clients[client_id].config

    def partition_keys(self) -> list[str]:
        return [f"{cid}|{p}" for cid in sorted(self.clients) for p in self.clients[cid].config.enabled_platforms()]


def config_files(directory: Path) -> list[Path]:
    """Every `*.yaml` / `*.yml` entry of the directory, whatever kind of file it is: the loader refuses
    symbolic links, directories and other non-regular files with a problem each, so none goes unreported.
    Hidden names (an editor's `.#x.yaml` lock link) are not configs."""
    if not directory.is_dir():
        raise ConfigError([f"{directory}: client config directory does not exist (set PSP_CLIENT_CONFIGS_DIR)"])
    return sorted(p for p in directory.iterdir() if p.suffix in CONFIG_SUFFIXES and not p.name.startswith("."))


def load_fleet(directory: Path, paths: Iterable[Path] | None = None) -> Fleet:
    """Load configs; invalid files are kept out of `clients` and reported in `problems`.

    A client id used by two files is a problem of the later file (by name), so the earlier keeps working;
    so is a client whose plugin names would clash with an earlier client's in a store that installs both
    (identity.clash_problem).
    """
    fleet = Fleet()
    for path in sorted(paths) if paths is not None else config_files(directory):
        label = _label(path, directory)
        try:
            data = read_client_file(path, label)
            if isinstance(data.get("id"), str):
                fleet.claims[label] = data["id"]
            config = parse_client(data, label)
        except ConfigError as exc:
            fleet.problems[label] = exc.problems
            continue
        if config.id in fleet.clients:
            first = _label(fleet.clients[config.id].path, directory)
            fleet.problems[label] = [
                f"{label}: id: {config.id!r} is already used by {first}; client ids must be unique"
            ]
            continue
        clash = next(
            (
                problem
                for other in fleet.clients.values()
                if (problem := clash_problem(label, config, other.config, _label(other.path, directory)))
            ),
            None,
        )
        if clash is not None:
            fleet.problems[label] = [clash]
            continue
        fleet.clients[config.id] = LoadedClient(config, path)
    return fleet


def template_problems(
    config: ClientConfig, label: str, templates_dir: Path, checks: TemplateChecks | None = None
) -> list[str]:
    """What is wrong with a config the model accepts, given the templates: an enabled platform without a
    template, a locale without a complete translation catalog. Each line starts with `label`."""
    checks = checks or TemplateChecks(templates_dir)
    problems = []
    missing = [p for p in config.enabled_platforms() if p not in checks.platforms]
    if missing:
        problems.append(f"{label}: platforms: no template for {', '.join(missing)} in {templates_dir}")
    return problems + [f"{label}: {line}" for line in checks.catalog_problems(tuple(config.locales))]


class TemplateChecks:
    """The templates' side of `template_problems`, read once for a whole fleet: the platforms that have a
    template, and the catalog problems of each set of locales (clients share a few)."""

    def __init__(self, templates_dir: Path) -> None:
        self.platforms = available_platforms(templates_dir)
        self._i18n = templates_dir / SHARED_DIR / "i18n"
        self._catalogs: dict[tuple[str, ...], list[str]] = {}

    def catalog_problems(self, locales: tuple[str, ...]) -> list[str]:
        if locales not in self._catalogs:
            try:
                catalog = load_catalog(self._i18n, list(locales))
            except PspError as exc:
                self._catalogs[locales] = str(exc).splitlines()
            else:
                self._catalogs[locales] = [f"locales: {line}" for line in catalog.problems()]
        return self._catalogs[locales]


def validate_fleet(directory: Path, templates_dir: Path, paths: Iterable[Path] | None = None) -> Fleet:
    """`load_fleet`, then `template_problems` for every valid client: a client with any moves from
    `clients` to `problems` under its file's label (and keeps its claim, so `Fleet.files_of` still finds
    it). The one validation behind `psp validate` and the `client_config` asset."""
    fleet = load_fleet(directory, paths)
    checks = TemplateChecks(templates_dir)
    for client_id, loaded in list(fleet.clients.items()):
        label = _label(loaded.path, directory)
        problems = template_problems(loaded.config, label, templates_dir, checks)
        if problems:
            del fleet.clients[client_id]
            fleet.problems[label] = problems
            fleet.claims[label] = client_id
    return fleet


def _label(path: Path, directory: Path) -> str:
    # the link itself, not its target: a symbolic link is reported under its own name
    try:
        return str(path.parent.resolve().joinpath(path.name).relative_to(directory.resolve().parent))
    except ValueError:
        return str(path)
