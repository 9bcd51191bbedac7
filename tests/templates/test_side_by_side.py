# ruff: noqa: E501  (JavaScript source in a string; the PHP stand-ins are tests/standins/)
"""Two banks' plugins for the same platform, installed in the same store, share no name.

For every platform two clients that enable it are rendered from the demo configs (one pair of unrelated
banks, and one pair where a client id is the other's plus a suffix, so that prefixes must be delimited),
and everything each plugin puts into a namespace the store shares is collected from the running code
where code decides it:

- PHP symbols: PHP's tokenizer lists every class, interface, trait, function and constant the files
  declare; then both trees' classes are loaded into one PHP process (platform classes the module extends
  are empty stand-ins made on demand), so a clash would be PHP's own "cannot declare class" error; the
  class constants that name things (codes, prefixes, tables, routes) are read from the loaded classes,
  and each plugin's lock implementation is asked for its lock name (database locks are server-wide).
- Platform registries, by running both plugins in the platform stand-ins the template tests use:
  WordPress/WooCommerce (REST routes, gateway ids, settings options read, checkout form fields, block
  checkout names, script handles, text domains), PrestaShop (configuration keys and tables written at
  install, the checkout's payment option forms), OpenCart (settings codes and keys saved, tables
  created), and the Shopify app servers side by side (ports, data folders, cookies, health).
- The platform's own files where the platform reads them: Magento's XML (module, routes, config paths,
  virtual types, DI array items, cron jobs, event observers, checkout layout), Shopify's TOML and
  package.json.
- Files, relative to the store root by the platform's install convention (template.yaml
  `deploy.install_path`), the artifact and the health route.

Names are compared ignoring case: PHP class names, MySQL names and most store settings are
case-insensitive. The real-WordPress counterpart is tests/integration/test_side_by_side_wordpress.py.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tomllib
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from psp_assets.core.config.fleet import load_fleet
from psp_assets.core.config.identity import clashes, identity_for
from psp_assets.core.config.model import ClientConfig, parse_client
from psp_assets.core.i18n import load_catalog
from psp_assets.core.render.engine import RenderedTree, render, render_context, render_string, write_tree
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import PLATFORMS, SHARED_DIR, Template, load_template
from tests.conftest import DEMO_CLIENTS, TEMPLATES
from tests.support.standins import standin

PAIRS = {
    "two banks": ("nordbank", "baltic-credit"),
    "one id extends the other": ("nordbank", "nordbank-eu"),
}

# --- the two clients ------------------------------------------------------------------------------------


def client_for(client_id: str, platform: str) -> ClientConfig:
    """A demo client with `platform` enabled (its own settings for it kept, e.g. the slug); ids without a
    demo config are Nord Bank's config under another id and name."""
    path = DEMO_CLIENTS / f"{client_id}.yaml"
    data = yaml.safe_load((path if path.is_file() else DEMO_CLIENTS / "nordbank.yaml").read_text())
    if not path.is_file():
        data.update(id=client_id, name=" ".join(p.capitalize() for p in client_id.split("-")), platforms={})
    settings = {**(data["platforms"].get(platform) or {}), "enabled": True}
    data["platforms"] = {platform: settings}
    return parse_client(data, f"{client_id}.yaml")


@dataclass(frozen=True)
class Plugin:
    config: ClientConfig
    template: Template
    tree: RenderedTree
    root: Path
    context: dict[str, Any]

    def render(self, text: str) -> str:
        return render_string(text, self.context)

    def text(self, rel: str) -> str:
        return self.tree.files[rel].decode()

    def xml(self, rel: str) -> ET.Element:
        return ET.fromstring(self.tree.files[rel])

    @property
    def folder(self) -> str:
        """The plugin's folder name, as the store names it (the last part of its install path)."""
        return self.render(self.template.spec.deploy.install_path or "").rsplit("/", 1)[-1]


def render_plugin(config: ClientConfig, platform: str, out: Path) -> Plugin:
    template = load_template(TEMPLATES, platform)
    catalog = load_catalog(TEMPLATES / SHARED_DIR / "i18n", list(config.locales))
    tree = render(template, config, catalog)
    context = render_context(template, config, catalog)
    # written into a folder named as the store names it: the stand-ins derive names from the folder
    folder = render_string(template.spec.deploy.install_path or config.id, context).rsplit("/", 1)[-1]
    root = write_tree(tree, out / config.id / folder)
    return Plugin(config, template, tree, root, context)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[tuple[str, str], tuple[Plugin, Plugin]] = {}

    def get(platform: str, pair: str) -> tuple[Plugin, Plugin]:
        if (platform, pair) not in cache:
            out = tmp_path_factory.mktemp(f"{platform}-{pair.replace(' ', '-')}")
            a, b = (render_plugin(client_for(cid, platform), platform, out) for cid in PAIRS[pair])
            cache[platform, pair] = (a, b)
        return cache[platform, pair]

    return get


# --- PHP: symbols, both trees in one process, named constants, lock names -------------------------------

SYMBOLS_PHP = standin("_shared", "symbols.php")

LOADER_PHP = standin("_shared", "loader.php")

# String class constants whose value is a name in a shared namespace (by the constant's name).
NAMING_CONSTANT = re.compile(r"::(?:\w+_)?(CODE|PREFIX|TABLE|ROUTE|NAMESPACE|HANDLE|SETTING|GATEWAY_ID|MODULE_NAME)$")


def run_php(php: NativePhp, work: Path, code: str, *args: str) -> dict[str, Any]:
    """Run `code` with the machine's PHP and no php.ini (as the checks do), plus the tokenizer extension."""
    script = work / f"probe-{abs(hash(code)) % 10**8}.php"
    script.write_text(code)
    command = [php.binary, "-n", "-d", "extension=tokenizer", str(script), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=work)
    assert result.returncode == 0 and not result.stderr, (result.stderr or result.stdout)[-3000:]
    return json.loads(result.stdout)


def php_names(plugins: tuple[Plugin, Plugin], php: NativePhp, work: Path) -> list[dict[str, set[str]]]:
    symbols = [run_php(php, work, SYMBOLS_PHP, str(p.root)) for p in plugins]
    trees = []
    for plugin, found in zip(plugins, symbols, strict=True):
        classes = {name: str(plugin.root / rel) for kind, name, rel in found["declarations"] if kind == "class"}
        core = plugin.render(plugin.template.spec.contract.namespace)
        trees.append({"classes": classes, "lock_interface": core + "\\LockInterface"})
    config = work / "loader.json"
    define = {k: v for p in plugins for k, v in p.template.spec.contract.define.items()}
    config.write_text(json.dumps({"define": define, "trees": trees}))
    loaded = run_php(php, work, LOADER_PHP, str(config))
    assert loaded["errors"] == [], loaded["errors"]
    out = []
    for tree, found, result in zip(trees, symbols, loaded["trees"], strict=True):
        loaded_classes, declared = {c.lower() for c in result["classes"]}, {c.lower() for c in tree["classes"]}
        assert loaded_classes == declared, (
            f"declared but not loaded (already declared by the other plugin?): {sorted(declared - loaded_classes)}; "
            f"loaded but not found by the tokenizer: {sorted(loaded_classes - declared)}"
        )
        out.append(
            {
                "PHP classes, interfaces and traits": set(result["classes"]),
                "PHP functions and constants": {n for kind, n, _ in found["declarations"] if kind != "class"},
                "named class constants": {
                    v for k, v in result["constants"].items() if NAMING_CONSTANT.search(k) and isinstance(v, str)
                },
                "lock names": set(result["locks"]),
                "_literals": set(found["literals"]),
                "_constants": result["constants"],
            }
        )
    return out


# --- the platforms ---------------------------------------------------------------------------------------

def woocommerce_names(plugins: tuple[Plugin, Plugin], php: NativePhp, work: Path) -> list[dict[str, set[str]]]:
    spec = [
        {
            "main": str(p.root / f"{p.context['ids']['slug']}.php"),
            "namespace": p.render("{{ vars.plugin_namespace }}"),
            "folder": p.folder,
        }
        for p in plugins
    ]
    (work / "plugins.json").write_text(json.dumps(spec))
    seen = run_php(php, work, standin("woocommerce", "wordpress.php", "side_by_side_probe.php"), "woo", str(work / "plugins.json"))
    assert seen.pop("errors") == []
    out = []
    for p in spec:
        mine = seen[p["namespace"]]
        fields = re.findall(r'\b(?:name|id)="([^"]+)"', mine.get("payment fields html", ""))
        assert set(mine.get("scripts", [])) == set(mine.get("script handles", [])), (
            f"{p['namespace']} names script handles {mine.get('script handles')} but registered {mine.get('scripts')} "
            "(the other plugin registered the same handle?)"
        )
        kinds = {
            "defined constants": "constants",
            "REST routes": "routes",
            "text domains": "text domains",
            "WooCommerce gateway ids": "gateway ids",
            "options": "options read",
            "block checkout payment methods": "block payment methods",
            "script handles": "scripts",
        }
        # a registry entry the other plugin overwrote is missing here: the test reports it as not found
        out.append(
            {kind: set(mine.get(key, [])) for kind, key in kinds.items()}
            | {"checkout form fields and element ids": set(fields)}
        )
    return out


def magento2_names(plugins: tuple[Plugin, Plugin], php: NativePhp, work: Path) -> list[dict[str, set[str]]]:
    out = []
    for p in plugins:
        script = work / "registrar.php"
        script.write_text(standin("magento2", "registrar.php"))
        run = php.run(script, [str(p.root / "registration.php")], cwd=work)
        assert run.returncode == 0 and not run.stderr, run.stderr
        [(kind, module, path)] = json.loads(run.stdout)
        assert (kind, path) == ("module", str(p.root))
        routes = p.xml("etc/frontend/routes.xml").iter("route")
        di = p.xml("etc/di.xml")
        own = p.render("{{ ids.vendor }}") + "\\"
        # arrays of Magento's own types merge across modules by item name
        foreign_items = {
            f"{t.get('name')}/{arg.get('name')}/{item.get('name')}"
            for f in ("etc/di.xml", "etc/frontend/di.xml")
            for t in p.xml(f).iter("type")
            if not t.get("name", "").startswith(own)
            for arg in t.iter("argument")
            for item in arg.findall("item")
        }
        layout = p.xml("view/frontend/layout/checkout_index_index.xml")
        out.append(
            {
                "module": {module},
                "routes and front names": {a for r in routes for a in (r.get("id"), r.get("frontName"))},
                "config paths": {
                    f"{section.tag}/{group.tag}"
                    for section in p.xml("etc/config.xml").find("default")
                    for group in section
                }
                | {
                    f"{s.get('id')}/{g.get('id')}"
                    for s in p.xml("etc/adminhtml/system.xml").iter("section")
                    for g in s.findall("group")
                },
                "DI virtual types": {v.get("name") for v in di.iter("virtualType")},
                "items in Magento's DI arrays": foreign_items,
                "cron jobs": {j.get("name") for j in p.xml("etc/crontab.xml").iter("job")},
                # an observer replaces another module's of the same name on the same event
                "event observers": {
                    f"{event.get('name')}/{observer.get('name')}"
                    for f in p.tree.files
                    if f.startswith("etc/") and f.endswith("events.xml")
                    for event in p.xml(f).iter("event")
                    for observer in event.iter("observer")
                },
                "checkout layout leaves": set(_leaf_paths(layout)),
                "log files": {a.text or "" for a in di.iter("argument") if a.get("name") == "fileName"},
                "composer package": {json.loads(p.text("composer.json"))["name"]},
            }
        )
    return out


def _leaf_paths(element: ET.Element, prefix: str = "") -> list[str]:
    """The jsLayout items as paths: Magento merges layout arrays of all modules by item name."""
    items = element.findall("item")
    if not items:
        return [prefix] if prefix else [p for child in element for p in _leaf_paths(child, prefix)]
    return [p for item in items for p in _leaf_paths(item, f"{prefix}/{item.get('name')}")]


def prestashop_names(plugins: tuple[Plugin, Plugin], php: NativePhp, work: Path) -> list[dict[str, set[str]]]:
    """Both modules installed into one stand-in shop (one state), one after the other."""
    runner, state = work / "ps-runner.php", work / "ps-state.json"
    runner.write_text(standin("prestashop", "prestashop.php"))
    out = []

    def run(module: Path, scenario: str, **argument: Any) -> dict[str, Any]:
        proc = subprocess.run(
            [php.binary, "-n", str(runner), str(module), str(state), scenario, json.dumps(argument)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "@@OUT@@" in proc.stdout, proc.stdout + proc.stderr
        result = json.loads(proc.stdout.rsplit("@@OUT@@", 1)[1])
        assert result["errors"] == [], result["errors"]
        return result

    run(plugins[0].root, "nothing")  # the shop as it was before either module (PrestaShop's own settings)
    for p in plugins:
        before = json.loads(state.read_text())
        assert run(p.root, "install")["installed"] is True
        after = json.loads(state.read_text())
        created = [q for q in after["queries"][len(before["queries"]) :] if q.startswith("CREATE TABLE")]
        # the checkout page shows every module's payment option, forms included, in one document
        configured = {f"{p.context['ids']['const_prefix']}_API_KEY": "key_side_by_side"}
        options = run(p.root, "options", currency=1, config=configured)["options"]
        assert options, f"{p.folder} offers no payment option"
        form = "".join(option.get("form", "") for option in options)
        out.append(
            {
                "checkout form fields and element ids": set(re.findall(r'\b(?:name|id)="([^"]+)"', form)),
                "module": {p.context["ids"]["module"]},
                "configuration keys": set(after["config"]) - set(before["config"]),
                "tables": {re.search(r"CREATE TABLE IF NOT EXISTS `(\w+)`", q).group(1) for q in created},
                "front controller routes": {
                    f"module/{p.folder}/{f[len('controllers/front/') : -4]}"
                    for f in p.tree.files
                    if f.startswith("controllers/front/") and not f.endswith("index.php")
                },
            }
        )
    return out


def opencart_names(plugins: tuple[Plugin, Plugin], php: NativePhp, work: Path) -> list[dict[str, set[str]]]:
    """Both extensions installed and configured in one stand-in OpenCart (one state)."""
    runner, state = work / "oc-runner.php", work / "oc-state.json"
    runner.write_text(standin("opencart", "opencart.php"))
    out = []
    for p in plugins:
        code = p.folder
        before = json.loads(state.read_text()) if state.is_file() else {"settings": {}, "queries": [], "config": {}}
        for method, request in (
            ("install", {}),
            ("save", {"post": {f"payment_{code}_status": "0"}, "server": {"REQUEST_METHOD": "POST"}}),
        ):
            call = {
                "side": "admin",
                "controller": code,
                "method": method,
                "config": {"config_language": "en-gb"},
                **request,
            }
            proc = subprocess.run(
                [php.binary, "-n", str(runner), str(p.root), str(state), "4.0.2.3", json.dumps(call)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0 and not proc.stderr, proc.stderr or proc.stdout
            assert json.loads(proc.stdout)["errors"] == []
        after = json.loads(state.read_text())
        created = [q for q in after["queries"][len(before["queries"]) :] if q.startswith("CREATE TABLE")]
        saved = {k: v for k, v in after["settings"].items() if k not in before["settings"]}
        out.append(
            {
                "extension code": {code},
                "settings codes": set(saved),
                "settings keys": {key for values in saved.values() for key in values},
                "tables": {re.search(r"CREATE TABLE IF NOT EXISTS `(\w+)`", q).group(1) for q in created},
                "routes": {
                    f"extension/{code}/payment/{f.rsplit('/', 1)[1][:-4]}"
                    for f in p.tree.files
                    if "/controller/payment/" in f
                },
            }
        )
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shopify_names(plugins: tuple[Plugin, Plugin], php: NativePhp, work: Path) -> list[dict[str, set[str]]]:
    """Both app servers run side by side on one host, started from the same working directory; neither
    starts on a default port."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    env = {**os.environ, "SHOPIFY_API_KEY": "app_client_id", "SHOPIFY_API_SECRET": "shpss_side_by_side_secret_0123"}
    unset = {k: v for k, v in env.items() if k != "PORT"}
    refused = subprocess.run(
        ["node", str(plugins[0].root / "server.mjs")], cwd=work, env=unset, capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 2 and "PORT must be set to this app's own port" in refused.stderr, refused
    servers = []
    try:
        for p in plugins:
            port = _free_port()
            proc = subprocess.Popen(
                ["node", str(p.root / "server.mjs")],
                cwd=work,
                env={**env, "PORT": str(port)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            line = proc.stdout.readline()
            assert line, f"{p.config.id}'s app server did not start: {proc.stderr.read()}"
            servers.append((p, port, proc, json.loads(line)))
        out = []
        for p, port, _proc, started in servers:
            base = f"http://127.0.0.1:{port}"
            with urllib.request.urlopen(base + p.render(p.template.spec.deploy.health_route or ""), timeout=10) as r:
                health = json.loads(r.read())
            assert (health["plugin"], health["build"]) == (p.context["ids"]["slug"], p.tree.build), health
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", f"/apps/shopify/{p.context['ids']['slug']}/auth?shop=side-by-side.myshopify.com")
            install = connection.getresponse()
            assert install.status == 302, install.read()
            cookie = install.headers["Set-Cookie"]
            connection.close()
            app = tomllib.loads(p.text("shopify.app.toml"))
            [extension] = tomllib.loads(p.text(f"extensions/{p.context['ids']['slug']}/shopify.extension.toml"))[
                "extensions"
            ]
            out.append(
                {
                    "app handle": {app["handle"]},
                    "extension handle": {extension["handle"]},
                    "package": {json.loads(p.text("package.json"))["name"]},
                    "app URLs": {
                        app["application_url"],
                        *app["auth"]["redirect_urls"],
                        *(s["uri"] for s in app["webhooks"]["subscriptions"]),
                    }
                    | {v for k, v in extension.items() if k.endswith("_url")},
                    "listening ports": {str(port)},
                    "data folders": {started["data_dir"]},
                    "cookies (name and path)": {
                        f"{cookie.split('=', 1)[0]} {re.search(r'Path=([^;]+)', cookie).group(1)}"
                    },
                }
            )
            assert Path(started["data_dir"]).parent == p.root, started
        return out
    finally:
        for *_, proc, _started in servers:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()


PLATFORM_NAMES = {
    "woocommerce": woocommerce_names,
    "magento2": magento2_names,
    "shopify": shopify_names,
    "prestashop": prestashop_names,
    "opencart": opencart_names,
}
assert set(PLATFORM_NAMES) == set(PLATFORMS)


def names(plugins: tuple[Plugin, Plugin], php: NativePhp, work: Path) -> list[dict[str, set[str]]]:
    """Every name each of the two plugins uses in the store's shared namespaces, by kind."""
    platform = plugins[0].template.platform
    per_plugin = [dict(found) for found in PLATFORM_NAMES[platform](plugins, php, work)]
    if plugins[0].template.spec.php is not None:
        for mine, found in zip(per_plugin, php_names(plugins, php, work), strict=True):
            mine.update(found)
    for mine, p in zip(per_plugin, plugins, strict=True):
        spec = p.template.spec
        base = p.render(spec.deploy.install_path or "")
        assert base, f"{platform}: template.yaml deploy.install_path is not set"
        mine["files in the store"] = {f"{base}/{f}" for f in p.tree.files}
        mine["artifact"] = {p.render(spec.packaging.artifact)}
        mine["health route"] = {p.render(spec.deploy.health_route or "")}
    for mine in per_plugin:
        literals, constants = mine.pop("_literals", set()), mine.pop("_constants", {})
        if platform == "prestashop":
            # PrestaShop's translator keys catalogues by domain, store-wide
            mine["translation domains"] = {s for s in literals if re.fullmatch(r"Modules\.\w+\.\w+", s)}
            # the settings form's keys (saved by the back office, not at install): Settings::PREFIX + KEYS
            [settings] = {k.rsplit("::", 1)[0] for k in constants if k.endswith("\\Settings::PREFIX")}
            prefix, keys = constants[f"{settings}::PREFIX"], constants[f"{settings}::KEYS"]
            mine["configuration keys"] |= {prefix + key for key in keys}
    return per_plugin


# Kinds a plugin may legitimately not use (Magento modules declare no global functions; only clients that
# collect an IBAN at checkout add form fields to WooCommerce's checkout form and observe Magento events).
MAY_BE_EMPTY = {"PHP functions and constants", "checkout form fields and element ids", "event observers"}


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_two_clients_plugins_share_no_symbol_route_key_or_path_in_one_store(
    platform: str, pair: str, rendered, php: NativePhp, tmp_path: Path
) -> None:
    a, b = rendered(platform, pair)
    assert a.config.id != b.config.id
    found_a, found_b = names((a, b), php, tmp_path)
    assert set(found_a) == set(found_b)
    for kind in found_a:
        mine, theirs = found_a[kind], found_b[kind]
        if kind not in MAY_BE_EMPTY:
            assert mine and theirs, f"{platform}: no {kind} found for {a.config.id if not mine else b.config.id}"
        shared = {n.lower() for n in mine} & {n.lower() for n in theirs}
        assert not shared, f"{platform}: {a.config.id} and {b.config.id} share {kind}: {sorted(shared)[:5]}"


# --- names that differ only in case, '-' or '_' -------------------------------------------------------------


def test_client_ids_differing_only_in_a_hyphen_collide_in_php_and_the_fleet_refuses_the_later(
    php: NativePhp, tmp_path: Path
) -> None:
    # "nord-bank" and "nordbank" derive PspNordBank and PspNordbank: one PHP class name to PHP
    plugins = tuple(
        render_plugin(client_for(cid, "woocommerce"), "woocommerce", tmp_path) for cid in ("nord-bank", "nordbank")
    )
    with pytest.raises(AssertionError, match=r"(?i)cannot declare (class|interface) PspNordBank\\WooCommerce\\"):
        php_names(plugins, php, tmp_path)  # type: ignore[arg-type]
    found = clashes(identity_for(plugins[0].config, "prestashop"), identity_for(plugins[1].config, "prestashop"))
    assert ("module", "nordbankpayments", "nordbankpayments") in found

    configs = tmp_path / "client_configs"
    configs.mkdir()
    for cid in ("nordbank", "nord-bank"):
        data = yaml.safe_load((DEMO_CLIENTS / "nordbank.yaml").read_text())
        data.update(id=cid, platforms={"woocommerce": {}, "opencart": {}})
        (configs / f"{cid}.yaml").write_text(yaml.safe_dump(data))
    fleet = load_fleet(configs)
    assert list(fleet.clients) == ["nord-bank"]  # files load in name order: nord-bank.yaml first
    [problem] = fleet.problems["client_configs/nordbank.yaml"]
    assert problem.startswith("client_configs/nordbank.yaml: id: the woocommerce plugin would share names with client")
    assert "php_namespace 'PspNordbank' ~ 'PspNordBank'" in problem
    assert "choose a client id that differs in more than case, '-' or '_'" in problem


def test_two_clients_choosing_one_slug_are_refused_naming_the_slug_setting(tmp_path: Path) -> None:
    for cid, slug in (
        ("nordbank", "bank-payments"),
        ("baltic-credit", "bankpayments"),
        ("alpenkasse", "bank-payments"),
    ):
        data = yaml.safe_load((DEMO_CLIENTS / f"{cid}.yaml").read_text())
        data["platforms"] = {"prestashop": {"slug": slug}} if cid != "alpenkasse" else {"magento2": {"slug": slug}}
        (tmp_path / f"{cid}.yaml").write_text(yaml.safe_dump(data))
    fleet = load_fleet(tmp_path)
    # alpenkasse runs Magento only: the same slug there shares no store with the PrestaShop modules
    assert sorted(fleet.clients) == ["alpenkasse", "baltic-credit"]
    [problem] = fleet.problems[f"{tmp_path.name}/nordbank.yaml"]
    assert f"{tmp_path.name}/nordbank.yaml: platforms.prestashop.slug: the prestashop plugin would share" in problem
    assert "module 'bankpayments' ~ 'bankpayments'" in problem
    assert "set platforms.prestashop.slug to a name of its own" in problem
