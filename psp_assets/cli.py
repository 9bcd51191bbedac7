"""`psp`: the platform's work outside the Dagster UI.

psp validate [PATH...]                      validate client configs (all of client_configs/ by default)
psp render --client ID --platform P --out DIR [--force]
                                            write exactly what rendered_source produces
psp new-client ID                           write a valid starter config
psp schema [--check]                        export (or check) schema/client_config.schema.json
psp fleet                                   materialize the whole fleet through Dagster, print a summary
psp rollout status [--platform P] [--refresh] [--json]   each platform's rollout and its payment verdicts
psp release clear-bad --client ID --platform P --target NAME --release R --reason TEXT
                                            take back a store's bad mark on a release (recorded in its history)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from psp_assets.core.config.fleet import load_fleet, validate_fleet
from psp_assets.core.config.model import json_schema, starter_config
from psp_assets.core.config.reference import config_reference
from psp_assets.core.deploy.stores import clear_bad_mark
from psp_assets.core.errors import ConfigError, PspError
from psp_assets.core.lineage import render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.templates.spec import PLATFORMS
from psp_assets.core.workspace import REPO_ROOT, Paths

SCHEMA_PATH = REPO_ROOT / "schema" / "client_config.schema.json"
REFERENCE_PATH = REPO_ROOT / "docs" / "config-reference.md"


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_validate(args: argparse.Namespace, paths: Paths) -> int:
    files = [Path(p) for p in args.paths]
    for f in files:
        if not os.path.lexists(f):
            _err(f"{f}: no such file")
            return 2
    fleet = validate_fleet(paths.configs_dir, paths.templates_dir, files or None)
    problems = [p for ps in fleet.problems.values() for p in ps]
    for line in problems:
        _err(line)
    print(f"{len(fleet.clients) + len(fleet.problems)} config(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


# Written into every folder `psp render` fills: only such a folder is replaced without --force.
RENDER_MARKER = ".psp-render"


def out_dir_problem(out: Path, force: bool, paths: Paths) -> str:
    """Why `psp render --out` must not replace `out` ('' when it may): it is a link or a file, it holds the
    working directory, the home, the repository or a workspace folder, it lies among the configs or the
    templates (all refused even with --force), or it is a non-empty folder `psp render` did not write
    (refused unless --force)."""
    if out.is_symlink():
        return f"{out}: --out: is a symbolic link; name the folder itself"
    if out.exists() and not out.is_dir():
        return f"{out}: --out: exists and is not a folder"
    resolved = out.resolve()
    for name, keep in (
        ("the working directory", Path.cwd()),
        ("the home directory", Path.home()),
        ("the repository", REPO_ROOT),
        ("PSP_CLIENT_CONFIGS_DIR", paths.configs_dir),
        ("PSP_TEMPLATES_DIR", paths.templates_dir),
        ("PSP_DATA_DIR", paths.data_dir),
    ):
        keep = keep.resolve()
        if resolved == keep or resolved in keep.parents:
            return f"{out}: --out: would replace {name} ({keep}); name a folder of its own (refused even with --force)"
    for name, source in (("PSP_CLIENT_CONFIGS_DIR", paths.configs_dir), ("PSP_TEMPLATES_DIR", paths.templates_dir)):
        if source.resolve() in resolved.parents:
            return f"{out}: --out: is inside {name} ({source}); rendered files do not belong among the sources"
    if not resolved.is_dir() or force or not any(resolved.iterdir()):
        return ""
    marker = resolved / RENDER_MARKER
    if marker.is_symlink() or not marker.is_file():
        return (
            f"{out}: --out: folder is not empty and was not written by psp render (no {RENDER_MARKER}); "
            "name a new folder, or pass --force to replace everything in it"
        )
    return ""


def cmd_render(args: argparse.Namespace, paths: Paths) -> int:
    fleet = load_fleet(paths.configs_dir)
    config = fleet.client(args.client)
    out = Path(args.out)
    problem = out_dir_problem(out, args.force, paths)
    if problem:
        _err(problem)
        return 1
    source = render_plugin(plan_plugin(paths, config, args.platform), out)
    tree = source.tree
    marker = {"client": args.client, "platform": args.platform, "build": tree.build}
    _create(source.path / RENDER_MARKER, json.dumps(marker, sort_keys=True) + "\n")
    print(f"rendered {args.client}|{args.platform} build {tree.build} ({len(tree.files)} files) into {source.path}")
    return 0


def _create(path: Path, text: str) -> None:
    """Write a new file; never through a symbolic link, never over an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def cmd_new_client(args: argparse.Namespace, paths: Paths) -> int:
    text = starter_config(args.id)
    target = paths.configs_dir / f"{args.id}.yaml"
    if target.is_symlink():
        _err(f"{target}: (file): is a symbolic link; not written through, remove it first")
        return 1
    if os.path.lexists(target):
        _err(f"{target}: (file): already exists; edit it instead")
        return 1
    fleet = load_fleet(paths.configs_dir)
    if args.id in fleet.clients:
        _err(f"{target}: id: {args.id!r} is already used by {fleet.clients[args.id].path}")
        return 1
    if claimed := [label for label, cid in fleet.claims.items() if cid == args.id]:
        _err(f"{target}: id: {args.id!r} is already claimed by {', '.join(claimed)} (invalid; fix that file instead)")
        return 1
    try:
        _create(target, text)
    except FileExistsError:
        _err(f"{target}: (file): appeared while writing (a file or a link); nothing written")
        return 1
    except OSError as exc:
        _err(f"{target}: (file): cannot be written ({exc.strerror})")
        return 1
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


def cmd_rollout_status(args: argparse.Namespace, paths: Paths) -> int:
    from datetime import UTC, datetime

    from psp_assets.core.reconciliation.ledger import Ledger, sqlite_url
    from psp_assets.core.rollout.analysis import verdicts_text
    from psp_assets.core.rollout.gate import RolloutState, evaluate, state_path

    found = 0
    report = []
    for platform in [args.platform] if args.platform else PLATFORMS:
        state = RolloutState.load(state_path(paths.data_dir, platform))
        if state is None:
            continue
        found += 1
        verdicts = state.verdict_objects()
        decision = state.decision
        if args.refresh and state.status == "holding":
            # the ledger the Dagster deployment reads (PSP_LEDGER_URL), else the embedded one
            url = os.environ.get("PSP_LEDGER_URL") or sqlite_url(paths.data_dir / "ledger" / "ledger.sqlite3")
            ledger = Ledger(url, schema=os.environ.get("PSP_LEDGER_SCHEMA") or None)
            clients = {cid: loaded.config for cid, loaded in load_fleet(paths.configs_dir).clients.items()}
            verdicts, judged = evaluate(ledger, state, clients, datetime.now(UTC))
            decision = f"{judged.action}: {judged.summary}"
            ledger.dispose()
        if args.json:
            report.append({**state.__dict__, "verdicts": [v.as_dict() for v in verdicts], "decision": decision})
            continue
        print(
            f"{platform}: rollout {state.rollout_id} {state.status}, wave {state.analysed_wave or '-'} of "
            f"{len(state.waves)} (updated {state.updated_at})"
        )
        if decision:
            print(f"  {decision}")
        print(verdicts_text(verdicts) if verdicts else "  no payment verdicts recorded")
        print()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif not found:
        print(f"no rollout recorded under {paths.data_dir / 'rollouts'}")
    return 0


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
    p.add_argument("--out", required=True, help="folder to write; an existing one only if psp render wrote it")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder psp render did not write")
    p = sub.add_parser("new-client", help="write a valid starter config")
    p.add_argument("id")
    p = sub.add_parser("schema", help="export the client config JSON Schema")
    p.add_argument("--check", action="store_true", help="fail when the committed schema is out of date")
    p = sub.add_parser("fleet", help="materialize every client x enabled platform through Dagster")
    p.add_argument("--client", action="append", help="only these clients (repeatable)")
    p = sub.add_parser("rollout", help="fleet rollouts and their payment analysis")
    rollout = p.add_subparsers(dest="rollout_command", required=True)
    p = rollout.add_parser("status", help="each platform's rollout and every analysed store's verdict")
    p.add_argument("--platform", choices=PLATFORMS)
    p.add_argument("--refresh", action="store_true", help="judge a holding wave now, from the ledger")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
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
        "rollout": cmd_rollout_status,
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
    except OSError as exc:
        _err(f"{exc.filename or args.command}: {exc.strerror or exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
