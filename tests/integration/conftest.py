"""Real stores for the deploy tests: OpenSSH's sshd on a free loopback port, a non-root deploy account,
and a WordPress store (Debian's `wordpress` package, MariaDB at 127.0.0.1:3306, PHP's built-in server).
Everything is started here and torn down after; nothing listens beyond 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from filelock import FileLock

DEPLOY_USER = "pspdeploy"
SSHD = "/usr/sbin/sshd"
WORDPRESS = Path("/usr/share/wordpress")
THEMES = Path("/usr/share/wordpress/wp-content/themes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def keygen(path: Path, kind: str = "ed25519") -> tuple[str, str]:
    """A key pair made by ssh-keygen: (private key text, public 'type base64')."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    public = path.with_suffix(".pub").read_text().split()
    return path.read_text(), f"{public[0]} {public[1]}"


def machine_account(name: str) -> pwd.struct_passwd:
    """The system account `name`, created if missing, with password field '*' (no password) rather than
    '!' (locked): sshd refuses locked accounts. pytest-xdist's workers and the fault campaign set accounts
    up side by side: one at a time, or two useradd/usermod calls race for the lock on /etc/passwd."""
    with FileLock(Path(tempfile.gettempdir()) / f"psp-tests-account-{name}.lock"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            if os.geteuid() != 0:
                raise RuntimeError(f"the tests need a '{name}' account; run them as root once") from None
            subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/sh", name], check=True)
        if os.geteuid() == 0:
            subprocess.run(["usermod", "-p", "*", name], check=True)
        return pwd.getpwnam(name)


@pytest.fixture(scope="session")
def deploy_user() -> pwd.struct_passwd:
    """A non-root account for deploys, so file permissions are real (root would ignore them)."""
    return machine_account(DEPLOY_USER)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through /proc (never by name: other sshds of the same account,
    another pytest-xdist worker's for one, are not ours)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


@dataclass
class Sshd:
    """One sshd process; stop() and start() simulate a store going away and coming back."""

    workdir: Path
    port: int
    host_public: str
    client_private: str
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.workdir / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "sshd.log", "ab"),  # noqa: SIM115 - owned by the process
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # sessions already accepted live in their own processes below the listener; end them too
            sessions = descendants(self.process.pid)
            self.process.terminate()
            self.process.wait(timeout=10)
            for pid in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def known_host(self) -> str:
        return self.host_public


def start_sshd(deploy_user: pwd.struct_passwd) -> Sshd:
    """An sshd on a free loopback port that lets `deploy_user` in (and no one else)."""
    workdir = Path(tempfile.mkdtemp(prefix="psp-sshd-"))
    workdir.chmod(0o755)
    host_private, host_public = keygen(workdir / "host_ed25519")
    client_private, client_public = keygen(workdir / "client_ed25519")
    (workdir / "authorized_keys").write_text(client_public + "\n")
    (workdir / "authorized_keys").chmod(0o644)
    port = free_port()
    (workdir / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {workdir / "host_ed25519"}
PidFile {workdir / "sshd.pid"}
AuthorizedKeysFile {workdir / "authorized_keys"}
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers {deploy_user.pw_name}
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 50
LogLevel ERROR
"""
    )
    del host_private
    sshd = Sshd(workdir, port, host_public, client_private)
    sshd.start()
    return sshd


@pytest.fixture(scope="session")
def sshd(deploy_user) -> Iterator[Sshd]:
    server = start_sshd(deploy_user)
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def own_sshd(deploy_user) -> Iterator[Sshd]:
    """An sshd of the test's own, for tests that stop it."""
    server = start_sshd(deploy_user)
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def store_root(deploy_user) -> Iterator[Path]:
    """A directory the deploy account owns, standing for a store's document root."""
    root = Path(tempfile.mkdtemp(prefix="psp-store-"))
    root.chmod(0o755)
    os.chown(root, deploy_user.pw_uid, deploy_user.pw_gid)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(path)], check=True)


@dataclass
class WordPressStore:
    docroot: Path
    port: int
    database: str
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def php(self, code: str) -> str:
        """Run PHP inside this WordPress (wp-load.php) and return what it printed."""
        script = self.docroot / f".psp-cli-{secrets.token_hex(4)}.php"
        script.write_text(
            f"<?php\n$_SERVER['HTTP_HOST'] = '127.0.0.1:{self.port}';\n$_SERVER['REQUEST_URI'] = '/';\n"
            f"require __DIR__ . '/wp-load.php';\nrequire_once ABSPATH . 'wp-admin/includes/plugin.php';\n{code}\n"
        )
        try:
            out = subprocess.run(["php", str(script)], capture_output=True, text=True, timeout=60, cwd=self.docroot)
        finally:
            script.unlink()
        if out.returncode != 0:
            raise RuntimeError(f"WordPress CLI script failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        return out.stdout

    def activate(self, *plugins: str) -> list:
        """activate_plugin() for each plugin file (`<slug>/<slug>.php`): what each returned, None on success.

        Debian's WordPress here (6.1) is older than the plugins' "Requires at least" (6.4, the WordPress
        WooCommerce 8.9 needs), so WordPress would refuse them. The tests that activate plugins check deploys
        and plugins side by side, not WordPress versions: activation sees $wp_version raised to the plugin's
        own minimum, and the real version is restored right after."""
        calls = ", ".join(f"psp_activate({json.dumps(p)})" for p in plugins)
        return json.loads(
            self.php(
                "function psp_activate($file) { global $wp_version; $real = $wp_version;"
                " $needs = get_plugin_data(WP_PLUGIN_DIR . '/' . $file, false, false)['RequiresWP'];"
                " if ($needs !== '' && version_compare($real, $needs, '<')) { $wp_version = $needs; }"
                " try { return activate_plugin($file); } finally { $wp_version = $real; } }"
                f" echo json_encode([{calls}]);"
            )
        )


def _mariadb(sql: str) -> None:
    subprocess.run(["mariadb", "-uroot", "-h127.0.0.1", "-P3306", "-e", sql], check=True, capture_output=True)


@pytest.fixture
def wordpress(store_root: Path, deploy_user) -> Iterator[WordPressStore]:
    """A fresh WordPress in a store the deploy account owns, installed into its own MariaDB database and
    served by PHP's built-in server. Its realpath cache and opcache are off, as on a store whose PHP-FPM
    is configured for symlink deploys (otherwise the previous release is served for up to
    realpath_cache_ttl / opcache.revalidate_freq after a switch; docs/operations.md says what to set)."""
    docroot = store_root / "wordpress"
    shutil.copytree(WORDPRESS, docroot, symlinks=False, ignore=shutil.ignore_patterns(".htaccess"))
    database = f"psp_wp_{secrets.token_hex(4)}"
    _mariadb(f"CREATE DATABASE {database} CHARACTER SET utf8mb4")
    salts = "\n".join(
        f"define('{k}', '{secrets.token_hex(24)}');"
        for k in (
            "AUTH_KEY",
            "SECURE_AUTH_KEY",
            "LOGGED_IN_KEY",
            "NONCE_KEY",
            "AUTH_SALT",
            "SECURE_AUTH_SALT",
            "LOGGED_IN_SALT",
            "NONCE_SALT",
        )
    )
    (docroot / "wp-config.php").write_text(
        f"""<?php
define('DB_NAME', '{database}');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', '127.0.0.1:3306');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
$table_prefix = 'wp_';
define('WP_DEBUG', false);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true); // a test store never reaches the internet
if (!defined('ABSPATH')) {{ define('ABSPATH', __DIR__ . '/'); }}
require_once ABSPATH . 'wp-settings.php';
"""
    )
    store = WordPressStore(docroot=docroot, port=free_port(), database=database)
    install = (
        "<?php\ndefine('WP_INSTALLING', true);\n"
        f"$_SERVER['HTTP_HOST'] = '127.0.0.1:{store.port}';\n$_SERVER['REQUEST_URI'] = '/';\n"
        "require __DIR__ . '/wp-load.php';\nrequire_once ABSPATH . 'wp-admin/includes/upgrade.php';\n"
        "wp_install('PSP test store', 'admin', 'admin@example.com', true, '', wp_generate_password(24));\n"
        f"update_option('siteurl', 'http://127.0.0.1:{store.port}');\n"
        f"update_option('home', 'http://127.0.0.1:{store.port}');\n"
        "update_option('permalink_structure', '/%postname%/');\n"
    )
    (docroot / ".install.php").write_text(install)
    subprocess.run(["php", str(docroot / ".install.php")], check=True, capture_output=True, timeout=120, cwd=docroot)
    (docroot / ".install.php").unlink()
    chown_tree(docroot, deploy_user)
    store.process = subprocess.Popen(
        [
            "php",
            "-d",
            "realpath_cache_size=0",
            "-d",
            "opcache.enable=0",
            "-S",
            f"127.0.0.1:{store.port}",
            "-t",
            str(docroot),
        ],
        cwd=docroot,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(store.port)
    yield store
    store.process.terminate()
    try:
        store.process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # still inside a request on a crowded machine: the store is done with
        store.process.kill()
        store.process.wait(timeout=10)
    _mariadb(f"DROP DATABASE IF EXISTS {database}")
