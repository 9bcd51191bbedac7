"""The `psp` command under hostile input: a corpus of bad client files, links and output folders.

Each case runs the installed `psp` entry point as a subprocess, as a person or a CI job would, against a
private workspace. Every case must end (the subprocess timeout is a hang detector, not a timing check)
with a non-zero exit, a `file: field: reason` line naming the file, no traceback, no raw control
characters echoed to the terminal, and no file written or changed outside the data folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DEMO_CLIENTS, TEMPLATES

PSP = Path(sys.executable).with_name("psp")
HANG = 120  # seconds: far above any honest run; only a hang reaches it
BASE = (DEMO_CLIENTS / "nordbank.yaml").read_text()


def run_psp(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(ws / "home"),
        "PSP_CLIENT_CONFIGS_DIR": str(ws / "client_configs"),
        "PSP_TEMPLATES_DIR": str(TEMPLATES),
        "PSP_DATA_DIR": str(ws / "data"),
    }
    try:
        return subprocess.run(
            [str(PSP), *args], capture_output=True, env=env, cwd=ws, timeout=HANG, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"psp {' '.join(args)} did not end within {HANG} s (a hang)")


def snapshot(ws: Path) -> dict[str, str]:
    """Every entry of the workspace outside data/, with its kind and content hash (links not followed)."""
    out = {}
    for root, dirs, files in os.walk(ws):
        rel_root = Path(root).relative_to(ws)
        if rel_root.parts[:1] == ("data",):
            continue
        for name in dirs + files:
            path = Path(root) / name
            rel = (rel_root / name).as_posix()
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_file() and path.stat().st_size > 16 * 1024 * 1024:
                info = path.stat()  # the sparse 2 GiB case: size and change time, not 2 GiB of hashing
                out[rel] = f"big:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
            elif path.is_file():
                out[rel] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "dir" if path.is_dir() else "special"
    return out


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """The workspace, alone in its own folder: the parent holds nothing else, so writes beside it show."""
    ws = tmp_path / "ws"
    shutil.copytree(DEMO_CLIENTS, ws / "client_configs")
    (ws / "home").mkdir()
    (ws / "outside").mkdir()
    return ws


def cfg(**replacements: str) -> str:
    """nordbank.yaml with id hostile (so it never clashes with the demo nordbank) and lines replaced."""
    text = BASE.replace("id: nordbank", "id: hostile").replace("slug: nordbank-payments", "slug: hostile-payments")
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


LINES = {
    "locales": "locales: [nl_NL, en_US]",
    "currencies": "currencies: [EUR]",
    "payment_methods": "payment_methods: [card, ideal, sepa_direct_debit]",
}


def bomb(levels: int = 9, width: int = 9) -> str:
    """A self-contained "billion laughs" flow sequence: width**levels values from a few hundred bytes."""
    parts = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def targets_with(value: str) -> str:
    return cfg(
        **{
            "  woocommerce:\n    slug: hostile-payments\n    targets:\n      - name: staging": (
                f"  woocommerce:\n    slug: hostile-payments\n    targets: {value}\n    x:\n      - name: staging"
            )
        }
    )


@dataclass
class Case:
    """A hostile file (or link) in client_configs/: `psp validate` must report `expect` for `label`."""

    name: str
    make: Callable[[Path], None]  # builds the hostile entry under client_configs/
    label: str
    expect: str  # regex the reported line must match after "<label>: "


def write(name: str, data: str | bytes) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        (d / name).write_bytes(data.encode() if isinstance(data, str) else data)

    return make


def link(name: str, target: Callable[[Path], str]) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        os.symlink(target(d), d / name)

    return make


def _valid_outside(d: Path) -> str:
    (d.parent / "outside" / "stolen.yaml").write_text(cfg())
    return str(d.parent / "outside" / "stolen.yaml")


def _fifo(d: Path) -> None:
    os.mkfifo(d / "pipe.yaml")


def _socket(d: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.yaml"))
    sock.close()


def _loop_pair(d: Path) -> None:
    os.symlink("loop-b.yaml", d / "loop-a.yaml")
    os.symlink("loop-a.yaml", d / "loop-b.yaml")


def _sparse(d: Path) -> None:
    with open(d / "sparse.yaml", "wb") as f:
        f.truncate(2 * 1024**3)  # 2 GiB of holes: refused by size, never read


F = "client_configs/"
TOKEN = "  token_env: NORDBANK_GITHUB_TOKEN"
STAGING_PATH = "path: nordbank-staging/wp-content/plugins/nordbank-payments"
WOO_SLUG = "    slug: hostile-payments\n    targets:\n      - name: staging"
LINK = r"\(file\): is a symbolic link; links are not followed"
CASES = [
    # alias bombs: in every list field, a merge-key bomb, and one just under the node limit
    *[
        Case(f"alias bomb in {field}", write(f"{field}.yaml", cfg(**{line: f"{field}: {bomb()}"})), "", "")
        for field, line in LINES.items()
    ],
    Case("alias bomb in targets", write("targets.yaml", targets_with(bomb())), "", ""),
    Case(
        "alias bomb in reconciliation.stores",
        write("stores.yaml", cfg() + f"reconciliation:\n  stores: {bomb()}\n"),
        "",
        "",
    ),
    Case(
        "alias bomb in github.repositories",
        write(
            "repos.yaml",
            cfg(**{TOKEN: TOKEN + f"\n  repositories: {{magento2: {bomb()}}}"}),
        ),
        "",
        "",
    ),
    Case(
        "small bomb the loader admits (6,561 values): described by type only",
        write("small.yaml", cfg(**{LINES["locales"]: f"locales: {bomb(levels=4)}"})),
        "",
        r"locales\[0\]: Input should be a valid string$",
    ),
    Case(
        "merge-key bomb",
        write(
            "merge.yaml",
            "a0: &a0 {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x}\n"
            + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 8))
            + "checkout:\n  <<: *a0\n",
        ),
        "",
        "",
    ),
    Case(
        "merge keys doubling a mapping at each level",
        write(
            "mergedouble.yaml",
            cfg()
            + "x0: &x0 {k: 1}\n"
            + "".join(f"x{i}: &x{i} {{<<: [*x{i - 1}, *x{i - 1}], k{i}: 1}}\n" for i in range(1, 45)),
        ),
        "",
        "",
    ),
    Case(
        "alias to its own anchor (a loop)",
        write("cycle.yaml", cfg(**{LINES["locales"]: "locales: &me [*me]"})),
        "",
        r"locales: an alias refers to the value that contains it",
    ),
    Case(
        "too many aliases",
        write("aliases.yaml", cfg(**{LINES["currencies"]: "currencies: [&e EUR, " + ", ".join(["*e"] * 150) + "]"})),
        "",
        r"currencies\[\d+\]: more than 100 aliases",
    ),
    # deep nesting
    Case(
        "deep flow nesting",
        write("deep.yaml", cfg(**{LINES["locales"]: "locales: " + "[" * 20000 + "]" * 20000})),
        "",
        r"locales\[0\]\[0\]\[0\].*nested more than 64 levels deep",
    ),
    Case(
        "deep block nesting",
        write(
            "deepblock.yaml",
            cfg() + "features:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(300)) + "  " * 301 + "v\n",
        ),
        "",
        r"features\.k0\.k1.*nested more than 64",
    ),
    Case(
        "deep nesting under the limit",
        write("deepok.yaml", cfg(**{LINES["locales"]: "locales: " + "[" * 60 + "]" * 60})),
        "",
        r"locales\[0\]: .*(valid string|a list)",
    ),
    # unhashable and odd keys
    Case("list as a key", write("listkey.yaml", cfg() + "? [a, b]\n: 1\n"), "", r"\(top level\): a key is a list"),
    Case(
        "mapping as a key",
        write("mapkey.yaml", cfg(**{"features:": "features:\n  ? {a: 1}\n  : 2"})),
        "",
        r"features: a key is a mapping",
    ),
    Case(
        "flow list key in platforms",
        write("flowkey.yaml", cfg(**{"platforms:": "platforms: {[woocommerce]: {}}\nx:"})),
        "",
        r"platforms: a key is a list",
    ),
    Case(
        "set with an unhashable member",
        write("set.yaml", cfg() + "extra: !!set {? [1]}\n"),
        "",
        r"extra: a key is a list",
    ),
    Case("integer key", write("intkey.yaml", cfg() + "1: one\n"), "", r"\[1\]: Keys should be strings \(got 1\)"),
    Case(
        "1,000-character key",
        write("longkey.yaml", cfg() + "k" * 1000 + ": v\n"),
        "",
        r"'k{40}\.\.\.': unknown setting",
    ),
    Case(
        "5,000-character key",
        write("longerkey.yaml", cfg() + "k" * 5000 + ": v\n"),
        "",
        r"line 43, column \d+: invalid YAML",
    ),
    # symbolic links of every kind, and every *.yaml that is not a regular file
    Case("link to a valid config outside the folder", link("outside.yaml", _valid_outside), F + "outside.yaml", LINK),
    Case("link to a sibling config", link("sibling.yaml", lambda d: "nordbank.yaml"), F + "sibling.yaml", LINK),
    Case("dangling link", link("dangling.yaml", lambda d: "missing.yaml"), F + "dangling.yaml", LINK),
    Case("link to itself", link("self.yaml", lambda d: "self.yaml"), F + "self.yaml", LINK),
    Case("two links in a loop", _loop_pair, F + "loop-a.yaml", LINK),
    Case("link to a directory", link("dirlink.yaml", lambda d: str(d.parent / "outside")), F + "dirlink.yaml", LINK),
    Case("link to /dev/zero", link("zero.yaml", lambda d: "/dev/zero"), F + "zero.yaml", LINK),
    Case(".yml link", link("other.yml", lambda d: "nordbank.yaml"), F + "other.yml", LINK),
    Case(
        "directory named .yaml",
        lambda d: (d / "folder.yaml").mkdir(),
        F + "folder.yaml",
        r"\(file\): is a directory, not a regular file",
    ),
    Case("named pipe", _fifo, F + "pipe.yaml", r"is a named pipe, not a regular file"),
    Case("socket", _socket, F + "sock.yaml", r"is a socket, not a regular file"),
    # encodings
    Case(
        "Latin-1 text",
        write("latin1.yaml", cfg(**{"name: Nord Bank": "name: Nörd Bank"}).encode("latin-1")),
        "",
        r"line 4: not UTF-8 text \(byte \d+\)",
    ),
    Case("overlong UTF-8", write("overlong.yaml", cfg().encode() + b"x: \xc0\xaf\n"), "", r"line \d+: not UTF-8 text"),
    Case(
        "encoded surrogate", write("surrogate.yaml", cfg().encode() + b"x: \xed\xa0\x80\n"), "", r"line \d+: not UTF-8"
    ),
    Case("truncated UTF-8 at the end", write("trunc.yaml", cfg().encode() + b"x: \xe2\x82"), "", r"not UTF-8"),
    Case(
        "UTF-16 LE with BOM", write("utf16le.yaml", cfg().encode("utf-16")), "", r"UTF-16 or UTF-32 .*save it as UTF-8"
    ),
    Case("UTF-16 BE with BOM", write("utf16be.yaml", b"\xfe\xff" + cfg().encode("utf-16-be")), "", r"UTF-16 or UTF-32"),
    Case("UTF-16 without BOM", write("utf16nobom.yaml", cfg().encode("utf-16-le")), "", r"NUL byte"),
    Case(
        "UTF-8 BOM before an invalid config",
        write("bom.yaml", "\ufeff" + cfg(**{"id: hostile": "id: Hostile!"})),
        "",
        r"id: 'Hostile!' must match",
    ),
    Case("two UTF-8 BOMs", write("bom2.yaml", "\ufeff\ufeff" + cfg()), "", r"unknown setting|id: Field required"),
    Case(
        "BOM inside a value",
        write("bomval.yaml", cfg(**{"name: Nord Bank": "name: Nord\ufeffBank"})),
        "",
        r"name: 'Nord\\ufeffBank' must be",
    ),
    # NUL and control characters
    Case(
        "NUL byte at the start", write("nul0.yaml", b"\x00" + cfg().encode()), "", r"contains a NUL byte \(offset 0\)"
    ),
    Case("NUL byte in a value", write("nul.yaml", cfg(**{"name: Nord Bank": "name: Nord\x00Bank"})), "", r"NUL byte"),
    Case(
        "escaped NUL in a value",
        write("nulesc.yaml", cfg(**{"name: Nord Bank": 'name: "Nord\\0Bank"'})),
        "",
        r"name: 'Nord\\x00Bank' must be",
    ),
    Case(
        "terminal escape sequence",
        write("esc.yaml", cfg(**{"name: Nord Bank": "name: Nord\x1b[2JBank"})),
        "",
        r"line 4: invalid YAML: .*special characters are not allowed",
    ),
    Case(
        "escaped terminal escape",
        write("escq.yaml", cfg(**{"id: hostile": 'id: "\\e[31mred"'})),
        "",
        r"id: '\\x1b\[31mred' must match",
    ),
    # huge inputs
    Case("file over 1 MiB", write("huge.yaml", cfg() + "#" * (1024 * 1024) + "\n"), "", r"larger than 1048576 bytes"),
    Case("2 GiB sparse file", _sparse, "", r"larger than 1048576 bytes"),
    Case(
        "one 900 kB value",
        write("bigvalue.yaml", cfg(**{"name: Nord Bank": "name: " + "B" * 900_000})),
        "",
        r"name: 'B{60}\.\.\.' must be",
    ),
    Case(
        "60,000 list items",
        write("items.yaml", cfg(**{LINES["currencies"]: "currencies: [" + ",".join(["E"] * 60_000) + "]"})),
        "",
        r"currencies: expands to more than 50000 values",
    ),
    Case(
        "40,000 bad list items",
        write("bad_items.yaml", cfg(**{LINES["currencies"]: "currencies: [" + ",".join(["1"] * 40_000) + "]"})),
        "",
        r"currencies\[0\]: Input should be a valid string",
    ),
    Case(
        "integer of 5,000 digits",
        write("bigint.yaml", cfg(**{"  manual_capture: false": "  manual_capture: " + "9" * 5000})),
        "",
        r"invalid YAML value: Exceeds the limit",
    ),
    # duplicate keys
    Case("duplicate top-level key", write("dupid.yaml", cfg() + "id: again\n"), "", r"id: duplicate key"),
    Case(
        "duplicate nested key",
        write(
            "dupslug.yaml",
            cfg(**{WOO_SLUG: WOO_SLUG.replace("targets:", "slug: other\n    targets:")}),
        ),
        "",
        r"platforms\.woocommerce\.slug: duplicate key",
    ),
    Case("duplicate key, quoted and plain", write("dupq.yaml", cfg() + '"name": Other\n'), "", r"name: duplicate key"),
    Case(
        "duplicate key, two spellings of one integer",
        write("dupint.yaml", cfg() + "extra: {1: a, 0x1: b}\n"),
        "",
        r"duplicate key 1",
    ),
    # wrong types and shapes
    Case("empty file", write("empty.yaml", ""), "", r"\(file\): is empty"),
    Case("comments only", write("comments.yaml", "# nothing\n"), "", r"\(file\): is empty"),
    Case("top-level list", write("list.yaml", "- id: x\n"), "", r"\(top level\): is a list"),
    Case("top-level string", write("str.yaml", "hello\n"), "", r"\(top level\): is a str"),
    Case(
        "two documents",
        write("twodocs.yaml", cfg() + "---\nid: other\n"),
        "",
        r"invalid YAML: but found another document",
    ),
    Case("syntax error", write("syntax.yaml", cfg() + "bad: [unclosed\n"), "", r"line \d+, column \d+: invalid YAML"),
    Case("tab indentation", write("tabs.yaml", cfg(**{"  refunds: true": "\trefunds: true"})), "", r"invalid YAML"),
    Case(
        "python object tag",
        write("pyobj.yaml", cfg() + "x: !!python/object/apply:os.system [touch /tmp/pwned]\n"),
        "",
        r"could not determine a constructor",
    ),
    Case(
        "unknown local tag",
        write("tag.yaml", cfg(**{"id: hostile": "id: !secret hostile"})),
        "",
        r"could not determine a constructor",
    ),
    Case(
        "id as a number",
        write("idnum.yaml", cfg(**{"id: hostile": "id: 12345"})),
        "",
        r"id: Input should be a valid string",
    ),
    Case(
        "id as a list",
        write("idlist.yaml", cfg(**{"id: hostile": "id: [a, b]"})),
        "",
        r"id: Input should be a valid string$",
    ),
    Case(
        "id as a date",
        write("iddate.yaml", cfg(**{"id: hostile": "id: 2024-01-01"})),
        "",
        r"id: Input should be a valid string",
    ),
    Case(
        "impossible date",
        write("baddate.yaml", cfg(**{"id: hostile": "id: 2024-13-45"})),
        "",
        r"invalid YAML value: month must be",
    ),
    Case(
        "locales as a string",
        write("locstr.yaml", cfg(**{LINES["locales"]: "locales: nl_NL"})),
        "",
        r"locales: Input should be a valid list",
    ),
    Case(
        "locales as a mapping",
        write("locmap.yaml", cfg(**{LINES["locales"]: "locales: {nl_NL: yes}"})),
        "",
        r"locales: Input should be a valid list",
    ),
    Case(
        "platforms as a list",
        write("platlist.yaml", cfg(**{"platforms:": "platforms: []\nx:"})),
        "",
        r"platforms: Input should be",
    ),
    Case(
        "boolean as text",
        write("boolword.yaml", cfg(**{"  refunds: true": "  refunds: maybe"})),
        "",
        r"features\.refunds: Input should be a valid boolean",
    ),
    Case(
        "infinite number",
        write("inf.yaml", cfg() + "webhooks: {tolerance_seconds: .inf}\n"),
        "",
        r"webhooks\.tolerance_seconds: ",
    ),
    Case("not a number", write("nan.yaml", cfg() + "kpis: {max_error_rate: .nan}\n"), "", r"kpis\.max_error_rate: "),
    Case(
        "binary value",
        write("binary.yaml", cfg(**{"name: Nord Bank": "name: !!binary aGVsbG8="})),
        "",
        r"line 4, column 7: invalid YAML: the tag 'binary' is not accepted",
    ),
    Case(
        "set of plain values",
        write("plainset.yaml", cfg(**{LINES["locales"]: "locales: !!set {nl_NL, en_US}"})),
        "",
        r"invalid YAML: the tag 'set' is not accepted",
    ),
    Case(
        "ordered pairs",
        write("omap.yaml", cfg(**{"features:": "features: !!omap [refunds: true]\nx:"})),
        "",
        r"invalid YAML: the tag 'omap' is not accepted",
    ),
    # hostile URLs
    Case(
        "template syntax as the API host",
        write("host.yaml", cfg(**{"https://api.nordbank.psp.example/v1": "https://{$x}${x}/v1"})),
        "",
        r"api_base_url: host '\{\$x\}\$\{x\}' is not a DNS name",
    ),
    Case(
        "5,000-character API host",
        write("longhost.yaml", cfg(**{"https://api.nordbank.psp.example/v1": "https://" + "a" * 5000 + ".example/v1"})),
        "",
        r"api_base_url: host is 5008 characters long; a DNS name has at most 253",
    ),
    Case(
        "64-character host label",
        write("label.yaml", cfg(**{"https://api.nordbank.psp.example/v1": "https://" + "a" * 64 + ".example/v1"})),
        "",
        r"api_base_url: host label 'a{60}\.\.\.' is 64 characters long",
    ),
    Case(
        "underscore in the host",
        write("under.yaml", cfg(**{"https://api.nordbank.psp.example/v1": "https://api_psp.example/v1"})),
        "",
        r"api_base_url: host 'api_psp.example' is not a DNS name",
    ),
    Case(
        "credentials in the API URL",
        write("creds.yaml", cfg(**{"https://api.nordbank.psp.example/v1": "https://u:p@api.example/v1"})),
        "",
        r"api_base_url: must be a plain base URL",
    ),
    Case(
        "all-digit last label",
        write("digits.yaml", cfg(**{"https://api.nordbank.psp.example/v1": "https://api.example.123/v1"})),
        "",
        r"api_base_url: Input should be a valid URL, invalid IPv4 address",
    ),
    Case(
        "health URL with a bad host",
        write(
            "health.yaml",
            cfg(**{STAGING_PATH: "path: x/y\n        health: {store_url: 'http://shop..ex/'}"}),
        ),
        "",
        r"platforms\.woocommerce\.targets\[0\]\.health\.store_url: host 'shop..ex' has an empty label",
    ),
    Case(
        "GitHub Enterprise URL with a bad host",
        write(
            "ghe.yaml",
            cfg(
                **{
                    "  token_env: NORDBANK_GITHUB_TOKEN": "  token_env: NORDBANK_GITHUB_TOKEN\n  base_url: 'https://{x}/api/v3'"
                }
            ),
        ),
        "",
        r"github\.base_url: host '\{x\}' is not a DNS name",
    ),
    Case(
        "target path leaving the stores folder",
        write(
            "traversal.yaml",
            cfg(**{"path: nordbank-staging/wp-content/plugins/nordbank-payments": "path: ../../../etc"}),
        ),
        "",
        r"platforms\.woocommerce\.targets\[0\]\.path: must not contain '\.\.'",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_refuses_hostile_client_file_and_names_file_field_and_reason(ws: Path, case: Case) -> None:
    configs = ws / "client_configs"
    before_names = set(os.listdir(configs))
    case.make(configs)
    label = case.label or F + (set(os.listdir(configs)) - before_names).pop()
    before = snapshot(ws)
    result = run_psp(ws, "validate")
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1, (result.returncode, err)
    assert "Traceback" not in err, err
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", err), "raw control characters reached the terminal"
    assert len(err) < 64_000, f"{len(err)} bytes of errors"
    lines = [line for line in err.splitlines() if line.startswith(label + ": ")]
    assert lines, f"no line for {label}: {err[:2000]}"
    assert any(re.match(re.escape(label) + r": [^:]+: ", line) or ": line " in line for line in lines), lines
    if case.expect:
        assert any(re.search(case.expect, line[len(label) + 2 :]) for line in lines), lines
    else:
        assert any("expands to more than" in line or "more than 100 aliases" in line for line in lines), lines
    assert "3 config(s) checked" not in result.stdout.decode()  # the hostile file is counted, not skipped
    assert snapshot(ws) == before


def test_each_hostile_file_is_reported_alone_and_the_demo_clients_still_load(ws: Path) -> None:
    """All the hostile entries in one folder: one problem line per file, the good configs unaffected."""
    configs = ws / "client_configs"
    for case in CASES:
        with contextlib.suppress(FileExistsError):
            case.make(configs)
    result = run_psp(ws, "validate")
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1
    reported = {line.split(": ", 1)[0] for line in err.splitlines()}
    hostile = {F + name for name in os.listdir(configs)} - {F + p.name for p in DEMO_CLIENTS.glob("*.yaml")}
    assert hostile <= reported, sorted(hostile - reported)
    assert not reported & {F + p.name for p in DEMO_CLIENTS.glob("*.yaml")}, "a demo client was blamed"


def test_validate_of_a_named_link_refuses_it(ws: Path) -> None:
    os.symlink(ws / "client_configs" / "nordbank.yaml", ws / "named.yaml")
    result = run_psp(ws, "validate", "named.yaml")
    assert result.returncode == 1
    assert b"named.yaml: (file): is a symbolic link" in result.stderr


def test_a_utf8_bom_before_a_valid_config_is_accepted(ws: Path) -> None:
    (ws / "client_configs" / "bom.yaml").write_text("\ufeff" + cfg())
    result = run_psp(ws, "validate")
    assert result.returncode == 0, result.stderr
    assert b"4 config(s) checked, 0 problem(s)" in result.stdout


def test_editor_lock_links_are_not_configs(ws: Path) -> None:
    os.symlink("user@host.1234", ws / "client_configs" / ".#nordbank.yaml")  # what Emacs leaves while editing
    assert run_psp(ws, "validate").returncode == 0


# --- psp render --out --------------------------------------------------------------------------------


def render(ws: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    return run_psp(ws, "render", "--client", "nordbank", "--platform", "woocommerce", "--out", out, *extra)


def _foreign(ws: Path) -> None:
    (ws / "mine").mkdir()
    (ws / "mine" / "notes.txt").write_text("keep")


def _linked_marker(ws: Path) -> None:
    (ws / "fake").mkdir()
    (ws / "fake" / "x").write_text("x")
    os.symlink(ws / "outside", ws / "fake" / ".psp-render")


# (name, setup, --out, expected message, whether --force may then replace it)
OUT_CASES = [
    ("non-empty folder", _foreign, "mine", r"mine: --out: folder is not empty and was not written by psp render", True),
    ("folder with a linked marker", _linked_marker, "fake", r"fake: --out: folder is not empty", True),
    ("the working directory", None, ".", r"\.: --out: would replace the working directory", False),
    ("the parent of the working directory", None, "..", r"\.\.: --out: would replace the working directory", False),
    ("the home directory", None, "home", r"home: --out: would replace the home directory", False),
    (
        "the configs folder",
        None,
        "client_configs",
        r"client_configs: --out: would replace PSP_CLIENT_CONFIGS_DIR",
        False,
    ),
    (
        "inside the configs folder",
        None,
        "client_configs/rendered",
        r"client_configs/rendered: --out: is inside PSP_CLIENT_CONFIGS_DIR",
        False,
    ),
    ("the data folder", lambda ws: (ws / "data").mkdir(), "data", r"data: --out: would replace PSP_DATA_DIR", False),
    (
        "a link to a folder",
        lambda ws: os.symlink(ws / "outside", ws / "via"),
        "via",
        r"via: --out: is a symbolic link",
        False,
    ),
    (
        "a dangling link",
        lambda ws: os.symlink(ws / "nowhere", ws / "dl"),
        "dl",
        r"dl: --out: is a symbolic link",
        False,
    ),
    ("a file", lambda ws: (ws / "afile").write_text("x"), "afile", r"afile: --out: exists and is not a folder", False),
]


@pytest.mark.parametrize(
    ("make", "out", "expect", "force_ok"), [c[1:] for c in OUT_CASES], ids=[c[0] for c in OUT_CASES]
)
def test_render_refuses_an_out_folder_it_did_not_write(ws: Path, make, out: str, expect: str, force_ok: bool) -> None:
    if make is not None:
        make(ws)
    before = snapshot(ws)
    parent_before = snapshot(ws.parent)
    result = render(ws, out)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert re.search(expect, err), err
    assert "Traceback" not in err
    assert snapshot(ws) == before and snapshot(ws.parent) == parent_before
    forced = render(ws, out, "--force")
    if force_ok:
        assert forced.returncode == 0, forced.stderr
        assert (ws / "outside").is_dir() and not any((ws / "outside").iterdir())  # nothing followed out of it
    else:
        assert forced.returncode == 1, forced.stdout
        assert snapshot(ws) == before and snapshot(ws.parent) == parent_before


def test_render_replaces_its_own_folder_and_force_replaces_a_foreign_one(ws: Path) -> None:
    assert render(ws, "plugin").returncode == 0
    (ws / "plugin" / "stale.txt").write_text("left from before")
    assert render(ws, "plugin").returncode == 0  # its own folder: replaced without --force
    assert not (ws / "plugin" / "stale.txt").exists()
    (ws / "theirs").mkdir()
    (ws / "theirs" / "notes.txt").write_text("x")
    assert render(ws, "theirs").returncode == 1 and (ws / "theirs" / "notes.txt").exists()
    assert render(ws, "theirs", "--force").returncode == 0
    assert not (ws / "theirs" / "notes.txt").exists() and (ws / "theirs" / ".psp-render").is_file()


def test_render_of_an_invalid_config_prints_that_files_problems(ws: Path) -> None:
    path = ws / "client_configs" / "nordbank.yaml"
    path.write_text(path.read_text().replace("currencies: [EUR]", "currencies: [eur, EUR, EUR]"))
    result = render(ws, "o")
    err = result.stderr.decode()
    assert result.returncode == 1
    assert "client_configs/nordbank.yaml: currencies: not ISO 4217 currency codes: 'eur'" in err, err
    assert "valid clients: none" not in err and not (ws / "o").exists()


def test_render_of_a_bomb_named_after_the_client_reports_the_bomb(ws: Path) -> None:
    (ws / "client_configs" / "nordbank.yaml").write_text(cfg(**{LINES["locales"]: f"locales: {bomb()}"}))
    err = render(ws, "o").stderr.decode()
    assert "client_configs/nordbank.yaml: locales: expands to more than 50000 values" in err, err


# --- psp new-client -----------------------------------------------------------------------------------


def test_new_client_never_writes_through_a_link(ws: Path) -> None:
    target = ws / "outside" / "planted.yaml"
    os.symlink(target, ws / "client_configs" / "acme.yaml")
    result = run_psp(ws, "new-client", "acme")
    assert result.returncode == 1 and b"acme.yaml: (file): is a symbolic link" in result.stderr
    assert not target.exists()


def test_new_client_refuses_an_id_an_invalid_file_already_claims(ws: Path) -> None:
    (ws / "client_configs" / "draft.yaml").write_text(
        cfg(**{"id: hostile": "id: acme", "currencies: [EUR]": "currencies: [x]"})
    )
    result = run_psp(ws, "new-client", "acme")
    assert result.returncode == 1 and b"already claimed by client_configs/draft.yaml" in result.stderr
    assert not (ws / "client_configs" / "acme.yaml").exists()
