"""`psp`: the platform's work outside the Dagster UI.

psp validate [PATH...]                      validate client configs (all of client_configs/ by default)
psp render --client ID --platform P --out DIR   write exactly what rendered_source produces
psp new-client ID                           write a valid starter config
psp schema [--check]                        export (or check) schema/client_config.schema.json
psp fleet                                   materialize the whole fleet through Dagster, print a summary
psp release clear-bad --client ID --platform P --target NAME --release R --reason TEXT
                                            take back a store's bad mark on a release (recorded in its history)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from psp_assets.core.config import PLATFORMS, json_schema, load_fleet, starter_config
from psp_assets.core.errors import ConfigError, PspError
from psp_assets.core.i18n import load_catalog
from psp_assets.core.pipeline import REPO_ROOT, Paths, clear_bad_mark, render_plugin
from psp_assets.core.reference import config_reference
from psp_assets.core.templates import SHARED_DIR, available_platforms

SCHEMA_PATH = REPO_ROOT / "schema" / "client_config.schema.json"
REFERENCE_PATH = REPO_ROOT / "docs" / "config-reference.md"


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_validate(args: argparse.Namespace, paths: Paths) -> int:
    files = [Path(p) for p in args.paths]
    for f in files:
        if not f.is_file():
            _err(f"{f}: no such file")
            return 2
    fleet = load_fleet(paths.configs_dir, files or None)
    problems = [p for ps in fleet.problems.values() for p in ps]
    templates = available_platforms(paths.templates_dir)
    i18n = paths.templates_dir / SHARED_DIR / "i18n"
    for _cid, loaded in sorted(fleet.clients.items()):
        label = os.path.relpath(loaded.path)
        missing = [p for p in loaded.config.enabled_platforms() if p not in templates]
        if missing:
            problems.append(f"{label}: platforms: no template for {', '.join(missing)} in {paths.templates_dir}")
        try:
            catalog = load_catalog(i18n, list(loaded.config.locales))
        except PspError as exc:
            problems += [f"{label}: {line}" for line in str(exc).splitlines()]
        else:
            problems += [f"{label}: locales: {line}" for line in catalog.problems()]
    for line in problems:
        _err(line)
    print(f"{len(fleet.clients) + len(fleet.problems)} config(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_render(args: argparse.Namespace, paths: Paths) -> int:
    fleet = load_fleet(paths.configs_dir)
    config = fleet.client(args.client)
    source = render_plugin(paths, config, args.platform, Path(args.out))
    tree = source.tree
    print(f"rendered {args.client}|{args.platform} build {tree.build} ({len(tree.files)} files) into {source.path}")
    return 0


def cmd_new_client(args: argparse.Namespace, paths: Paths) -> int:
    target = paths.configs_dir / f"{args.id}.yaml"
    if target.exists():
        _err(f"{target}: already exists; edit it instead")
        return 1
    fleet = load_fleet(paths.configs_dir)
    if args.id in fleet.clients:
        _err(f"client id {args.id!r} is already used by {fleet.clients[args.id].path}")
        return 1
    target.write_text(starter_config(args.id))
    print(f"wrote {target}; edit it, then `psp validate {target}`")
    return 0


def cmd_schema(args: argparse.Namespace, paths: Paths) -> int:
    schema = json_schema()
    outputs = {
        SCHEMA_PATH: json.dumps(schema, indent=2, sort_keys=True) + "\n",
        REFERENCE_PATH: config_reference(schema),
    }
    for path, text in outputs.items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                _err(f"{path} is out of date with the config model; run `psp schema`")
                return 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if args.check:
        print("schema and config reference are up to date")
    return 0


def cmd_fleet(args: argparse.Namespace, paths: Paths) -> int:
    from psp_assets.fleet import run_fleet

    return run_fleet(paths, clients=args.client or None)


def cmd_release(args: argparse.Namespace, paths: Paths) -> int:
    config = load_fleet(paths.configs_dir).client(args.client)
    print(clear_bad_mark(paths, config, args.platform, args.target, args.release, args.reason))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="psp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="validate client configs")
    p.add_argument("paths", nargs="*", help="config files (default: every file in PSP_CLIENT_CONFIGS_DIR)")
    p = sub.add_parser("render", help="render one plugin exactly as rendered_source does")
    p.add_argument("--client", required=True)
    p.add_argument("--platform", required=True, choices=PLATFORMS)
    p.add_argument("--out", required=True)
    p = sub.add_parser("new-client", help="write a valid starter config")
    p.add_argument("id")
    p = sub.add_parser("schema", help="export the client config JSON Schema")
    p.add_argument("--check", action="store_true", help="fail when the committed schema is out of date")
    p = sub.add_parser("fleet", help="materialize every client x enabled platform through Dagster")
    p.add_argument("--client", action="append", help="only these clients (repeatable)")
    p = sub.add_parser("release", help="operate on a store's releases")
    release = p.add_subparsers(dest="action", required=True)
    p = release.add_parser("clear-bad", help="take back a release's bad mark on one store target")
    p.add_argument("--client", required=True)
    p.add_argument("--platform", required=True, choices=PLATFORMS)
    p.add_argument("--target", required=True, help="the target's name in the client config")
    p.add_argument("--release", required=True, help="the release id, e.g. 1.4.0-0123456789ab")
    p.add_argument("--reason", required=True, help="why the mark was wrong (kept in the store's history)")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    handler = {
        "validate": cmd_validate,
        "render": cmd_render,
        "new-client": cmd_new_client,
        "schema": cmd_schema,
        "fleet": cmd_fleet,
        "release": cmd_release,
    }[args.command]
    try:
        return handler(args, paths)
    except ConfigError as exc:
        for line in exc.problems:
            _err(line)
        return 1
    except PspError as exc:
        _err(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
