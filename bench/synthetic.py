"""A synthetic fleet for benchmarks: N valid client configs and the loopback stores they deploy to.

    from bench.synthetic import write_fleet, LoopbackStores

`synthetic_client(i, seed)` is one client config (a dict, as the YAML file holds it): every platform
enabled, local deploy targets, locales, currencies, payment methods, features and checkout texts drawn
from a seeded generator, so the same (i, seed) is always the same client. Checkout texts include quotes
and code delimiters on purpose: they are data the templates must escape. `write_fleet` writes N of them.

`LoopbackStores` is an HTTP server on 127.0.0.1 standing in for the client's shops, so the deploy health
gate is real: `/<platform>/<target path>` is the storefront (a listing of the live plugin folder), and
`/<platform>/<target path><health route>` answers with what the *deployed* plugin reports: the server
loads the live plugin's core with the machine's PHP (Node for the Shopify app) and returns its
`Health::report()`. A release whose code does not load answers 500 with PHP's error output.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import random
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from psp_assets.core.config.model import PAYMENT_METHODS
from psp_assets.core.templates.spec import PLATFORMS, TemplateSpec, load_template

# Locales with a translation catalog (templates/_shared/i18n) and the source locale. en_US and en_GB
# are never drawn together: OpenCart folds both into its en-gb language folder.
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "it_IT", "es_ES", "pl_PL", "lt_LT")
CURRENCIES = ("EUR", "CHF", "PLN", "SEK", "DKK", "NOK", "CZK", "HUF", "GBP", "USD", "RON")
STEMS = ("nordic", "alpine", "baltic", "iberia", "adria", "danube", "rhine", "atlantic", "carpathia", "hansa")
NAMES = (
    "{Stem} Savings Bank",
    "Banque {Stem}",
    "{Stem} Kredit & Co",
    "Cassa {Stem} (Retail)",
    "Spółdzielczy Bank {Stem}",
    "Crédit {Stem}-Öresund",
    "{Stem} Merchant's Union",
)
TITLES = (
    "Pay with {name}",
    "Betalen met {name}",
    'Pay "securely" with {name}',
    "Zahlen: Karte oder Überweisung",
    "Pay <now> & 'later' ?> */ {{ x }}",
    "Płatność kartą / Mokėjimas kortele",
)
DESCRIPTIONS = (
    "You will be redirected to our secure payment page.",
    "Sicher bezahlen.\nSie werden zur Zahlungsseite weitergeleitet.",
    "Paiement sécurisé <script>alert(1)</script> \\ fin",
)


def letters(index: int, width: int = 3) -> str:
    """`index` in base 26 with letters (0 -> "aaa"): OpenCart extension codes may not contain digits."""
    out = ""
    for _ in range(width):
        index, digit = divmod(index, 26)
        out = chr(ord("a") + digit) + out
    if index:
        raise ValueError(f"client index too large for {width} letters")
    return out


def studly(client_id: str) -> str:
    return "".join(part.capitalize() for part in client_id.split("-"))


def _live_path(platform: str, client_id: str, slug: str, target: str) -> str:
    """Where each platform keeps a plugin inside a shop, under a per-client, per-target shop folder."""
    shop = f"fleet/{client_id}/{platform}-{target}"
    return {
        "woocommerce": f"{shop}/wp-content/plugins/{slug}",
        "magento2": f"{shop}/app/code/Psp{studly(client_id)}/Payment",
        "shopify": f"{shop}/apps/{slug}",
        "prestashop": f"{shop}/modules/{slug.replace('-', '')}",
        "opencart": f"{shop}/extension/psp_{client_id.replace('-', '_')}",
    }[platform]


def synthetic_client(index: int, seed: int = 7, store_url: str | None = None) -> dict[str, Any]:
    """Client number `index` of the synthetic fleet drawn with `seed`, as the mapping its YAML holds.

    With `store_url` (a `LoopbackStores.url`), every target gets an HTTP health gate on that server."""
    rng = random.Random(f"{seed}:{index}")
    stem = rng.choice(STEMS)
    client_id = f"{stem}-{letters(index)}"
    name = rng.choice(NAMES).format(Stem=stem.capitalize()) + f" {index:04d}"
    locales = rng.sample(LOCALES, rng.randint(1, 3))
    if "en_US" in locales and "en_GB" in locales:
        locales.remove("en_GB")
    refunds = rng.random() < 0.85
    platforms: dict[str, Any] = {}
    for platform in PLATFORMS:
        slug = f"{client_id}-pay" if rng.random() < 0.5 else f"{client_id}-payments"
        targets = []
        for target in ["staging", "production"] if rng.random() < 0.5 else ["production"]:
            path = _live_path(platform, client_id, slug, target)
            entry: dict[str, Any] = {"name": target, "transport": "local", "path": path}
            if store_url:
                entry["health"] = {
                    "store_url": f"{store_url.rstrip('/')}/{platform}/{path}",
                    "count": 2,
                    "interval_seconds": 0.2,
                    "timeout_seconds": 10,
                }
            targets.append(entry)
        platforms[platform] = {"slug": slug, "targets": targets}
    return {
        "id": client_id,
        "name": name,
        "api_base_url": f"https://api.{client_id}.psp.example/v{rng.randint(1, 3)}",
        "locales": locales,
        "currencies": rng.sample(CURRENCIES, rng.randint(1, 3)),
        "payment_methods": rng.sample(PAYMENT_METHODS, rng.randint(1, 5)),
        "features": {
            "refunds": refunds,
            "partial_refunds": refunds and rng.random() < 0.6,
            "manual_capture": rng.random() < 0.3,
            "debug_logging": rng.random() < 0.1,
        },
        "checkout": {
            "title": rng.choice(TITLES).format(name=name),
            "description": rng.choice(DESCRIPTIONS),
        },
        "webhooks": {"tolerance_seconds": rng.choice((120, 300, 600))},
        "platforms": platforms,
    }


def write_fleet(count: int, out_dir: Path, seed: int = 7, store_url: str | None = None, start: int = 0) -> list[Path]:
    """Write clients `start` ... `start + count - 1` as `<id>.yaml` files into `out_dir`; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(start, start + count):
        data = synthetic_client(index, seed, store_url)
        path = out_dir / f"{data['id']}.yaml"
        path.write_text(
            f"# synthetic client {index} (bench/synthetic.py, seed {seed})\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        )
        written.append(path)
    return written


# --- loopback stores -----------------------------------------------------------------------------

HEALTH_PHP = """<?php
// Loads a deployed plugin's core as its store would and prints what its Health class reports.
[$self, $root, $defines] = $argv;
foreach (json_decode($defines, true) as $name => $value) { define($name, $value); }
foreach (array_slice($argv, 3) as $file) { require_once $root . '/' . $file; }
foreach (get_declared_classes() as $class) {
    if (substr($class, -7) === '\\\\Health') { echo json_encode($class::report()); exit(0); }
}
fwrite(STDERR, "Fatal error: no Health class in the plugin core\\n");
exit(1);
"""
HEALTH_MJS = "const core = await import(process.argv[1]); process.stdout.write(JSON.stringify(core.Health.report()));"


class LoopbackStores(ThreadingHTTPServer):
    """Loopback shops for every local target under `stores_dir`; see the module docstring."""

    daemon_threads = True

    def __init__(self, stores_dir: Path, templates_dir: Path, php_binary: str | None = None) -> None:
        self.stores_dir = stores_dir
        self.templates_dir = templates_dir
        self.php = php_binary or os.environ.get("PSP_PHP_BINARY") or shutil.which("php") or "php"
        self.node = os.environ.get("PSP_NODE_BINARY") or shutil.which("node") or "node"
        self.requests = 0
        self._script = Path(stores_dir).parent / ".psp-store-health.php"
        self._specs: dict[str, TemplateSpec] = {}
        super().__init__(("127.0.0.1", 0), _StoreHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> LoopbackStores:
        self._script.parent.mkdir(parents=True, exist_ok=True)
        self._script.write_text(HEALTH_PHP)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._script.unlink(missing_ok=True)

    def spec(self, platform: str) -> TemplateSpec:
        if platform not in self._specs:
            self._specs[platform] = load_template(self.templates_dir, platform).spec
        return self._specs[platform]

    def route_pattern(self, platform: str) -> re.Pattern[str]:
        """The template's health route with every `{{ ... }}` as a wildcard."""
        route = self.spec(platform).deploy.health_route or ""
        parts = re.split(r"\{\{.*?\}\}", route)
        return re.compile("/?" + ".+".join(re.escape(p.lstrip("/") if i == 0 else p) for i, p in enumerate(parts)))

    def answer(self, url_path: str) -> tuple[int, str]:
        platform, _, rest = url_path.lstrip("/").partition("/")
        if platform not in PLATFORMS:
            return 404, f"no such platform {platform!r}"
        segments = rest.split("/")
        for cut in range(len(segments), 0, -1):  # the longest prefix that is a live plugin link
            live = self.stores_dir.joinpath(*segments[:cut])
            if live.is_symlink():
                route = "/".join(segments[cut:])
                break
        else:
            return 404, f"no store at {rest!r}"
        if not route.strip("/"):
            entries = sorted(p.name for p in live.iterdir())
            items = "".join(f"<li>{html.escape(e)}</li>" for e in entries)
            return 200, f"<html><body><h1>shop</h1><ul>{items}</ul></body></html>"
        if not self.route_pattern(platform).fullmatch("/" + route):
            return 404, f"{route!r} is not the {platform} health route"
        return self.health(platform, live)

    def health(self, platform: str, live: Path) -> tuple[int, str]:
        contract = self.spec(platform).contract
        if contract.runtime == "node":
            command = [self.node, "--input-type=module", "-e", HEALTH_MJS, (live / str(contract.module)).as_uri()]
        else:
            defines = json.dumps(contract.define or {})
            command = [self.php, "-n", "-d", "display_errors=stderr", str(self._script), str(live), defines]
            command += contract.bootstrap
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=20, cwd=live)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 500, f"Fatal error: health check could not run: {exc}"
        if out.returncode != 0 or out.stderr.strip():
            return 500, (out.stderr or out.stdout)[-2000:] or f"exit {out.returncode}"
        return 200, out.stdout


class _StoreHandler(BaseHTTPRequestHandler):
    server: LoopbackStores

    def do_GET(self) -> None:
        self.server.requests += 1
        parts = urlsplit(self.path)
        path = unquote(parts.path) + (f"?{unquote(parts.query)}" if parts.query else "")
        status, body = self.server.answer(path)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body.startswith("{") else "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass
