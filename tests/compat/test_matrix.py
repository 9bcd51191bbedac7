"""The compatibility matrix on real PHP 7.4 ... 8.5, and the PHP version policy of templates."""

from __future__ import annotations

import struct
from pathlib import Path

import pandas as pd
import pytest

from psp_assets.core import compat, lineage
from psp_assets.core.config.fleet import Fleet
from psp_assets.core.errors import PspError
from psp_assets.core.lineage import build_plugin, render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.runtimes.php import BOOTS, NativePhp, PhpRuntimes
from psp_assets.core.templates.spec import PHP_VERSIONS
from psp_assets.core.workspace import Paths
from tests.compat.conftest import ENUM_FILE, READONLY_FILE, add_file, edit_spec
from tests.conftest import DEMO_CLIENTS, TEMPLATES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def cells(frame: pd.DataFrame, platform: str) -> dict[tuple[str, str], str]:
    rows = frame[frame["platform"] == platform]
    return {(r.platform_version, r.php_version): r.status for r in rows.itertuples()}


def test_demo_fleet_passes_every_declared_cell_on_php_7_4_to_8_5(
    fleet: Fleet, templates_dir: Path, runtimes: PhpRuntimes
):
    before = BOOTS.copy()
    run = compat.run_matrix(fleet, templates_dir, runtimes)
    frame = run.frame
    assert len(frame) == (3 + 3) * len(PHP_VERSIONS)  # platform versions x every PHP version
    assert set(frame["php_version"]) == set(PHP_VERSIONS)
    woo = cells(frame, "woocommerce")
    assert woo == {(pv, php): "pass" for pv in ("8.9", "9.4", "10.2") for php in PHP_VERSIONS}
    magento = cells(frame, "magento2")
    for (_, php), status in magento.items():
        assert status == ("pass" if php in ("8.1", "8.2", "8.3", "8.4") else "not declared")
    # every cell is real runs of every client's plugin: lint of every file and the contract tests
    passing = frame[frame["status"] == "pass"]
    assert (passing["plugins"] == 2).all() and (passing["checks"] > 90).all()
    assert run.plugin_runs == 2 * 7 + 2 * 4
    # never a boot per file or per plugin: at most one per PHP version
    assert all(n <= 1 for n in (BOOTS - before).values())


def test_a_php_8_1_only_line_turns_the_7_4_and_8_0_cells_red(fleet: Fleet, templates_dir: Path, runtimes):
    add_file(templates_dir, "woocommerce", "includes/policy-probe.php", ENUM_FILE)
    frame = compat.run_matrix(fleet, templates_dir, runtimes).frame
    woo = cells(frame, "woocommerce")
    for (_, php), status in woo.items():
        assert status == ("fail" if php in ("7.4", "8.0") else "pass"), (php, status)
    red = frame[(frame["platform"] == "woocommerce") & (frame["status"] == "fail")]
    assert (red["lint_failed"] == 2).all()  # the one file, in each client's plugin
    assert all("lint includes/policy-probe.php: Parse error" in text for text in red["failures"])
    assert set(cells(frame, "magento2").values()) == {"pass", "not declared"}  # other platforms untouched


def test_a_template_using_readonly_fails_its_test_report_on_old_php_before_anything_is_built(
    templates_dir: Path, runtimes: PhpRuntimes, php: NativePhp, tmp_path: Path
):
    add_file(templates_dir, "woocommerce", "includes/policy-probe.php", READONLY_FILE)
    paths = Paths(DEMO_CLIENTS, templates_dir, tmp_path / "data", tmp_path / "stores")
    config = paths.fleet().client("nordbank")
    source = render_plugin(plan_plugin(paths, config, "woocommerce"))
    report = lineage.test_plugin(
        plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php, runtimes
    )
    by_php = report.by_php_version()
    assert list(by_php) == list(PHP_VERSIONS)  # the report shows every declared version
    assert {v: row["passed"] for v, row in by_php.items()} == {v: v not in ("7.4", "8.0") for v in PHP_VERSIONS}
    failed = report.failures()
    assert {(f.check, f.name, f.php_version) for f in failed} == {
        ("lint", "includes/policy-probe.php", "7.4"),
        ("lint", "includes/policy-probe.php", "8.0"),
    }
    with pytest.raises(PspError, match=r"nordbank\|woocommerce: test report failed \(lint:includes/policy-probe.php"):
        build_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, report)


def test_without_runtimes_the_report_runs_on_the_given_php_only(templates_dir, php: NativePhp, tmp_path: Path):
    paths = Paths(DEMO_CLIENTS, templates_dir, tmp_path / "data", tmp_path / "stores")
    config = paths.fleet().client("nordbank")
    source = render_plugin(plan_plugin(paths, config, "woocommerce"))
    report = lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)
    assert report.passed and list(report.by_php_version()) == [php.version]


def test_an_api_check_fails_only_the_platform_versions_it_names(fleet: Fleet, templates_dir: Path, runtimes):
    check = {
        "name": "gateway registers through the 9.x block checkout API",
        "versions": ["9.4", "10.2"],
        "message": "WooCommerce 9.4+ needs the gateway registered for the block checkout",
        "rule": {
            "rule": "matches",
            "file": "{{ ids.slug }}.php",
            "pattern": "NoSuchBlockCheckoutRegistration",
            "message": "registration call",
        },
    }
    edit_spec(templates_dir, "woocommerce", api_checks=[check])
    frame = compat.run_matrix(fleet, templates_dir, runtimes, php_versions=["7.4", "8.5"]).frame
    woo = frame[frame["platform"] == "woocommerce"]
    status = {(r.platform_version, r.php_version): r.status for r in woo.itertuples()}
    assert status[("8.9", "7.4")] == status[("8.9", "8.5")] == "pass"
    assert {status[(pv, php)] for pv in ("9.4", "10.2") for php in ("7.4", "8.5")} == {"fail"}
    red = woo[woo["status"] == "fail"]
    assert (red["api_failed"] == 2).all() and (red["lint_failed"] == 0).all()
    assert all("woocommerce 9.4: gateway registers" in t or "woocommerce 10.2: gateway" in t for t in red["failures"])


def test_a_template_that_cannot_render_fails_its_cells_and_the_rest_still_runs(fleet, templates_dir, runtimes):
    add_file(templates_dir, "magento2", "etc/broken.xml.j2", "<x>{{ no_such_value|xml }}</x>\n")
    frame = compat.run_matrix(fleet, templates_dir, runtimes, php_versions=["8.1"]).frame
    magento = frame[(frame["platform"] == "magento2") & (frame["php_version"] == "8.1")]
    assert set(magento["status"]) == {"fail"}
    assert all("etc/broken.xml.j2" in text and "no_such_value" in text for text in magento["failures"])
    assert set(frame[(frame["platform"] == "woocommerce") & frame["declared"]]["status"]) == {"pass"}


def test_regressions_name_every_cell_that_went_from_pass_to_fail():
    def matrix(statuses: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "platform": ["woocommerce", "woocommerce", "magento2", "magento2"],
                "platform_version": ["9.4", "9.4", "2.4.8", "2.4.8"],
                "php_version": ["7.4", "8.5", "8.4", "8.5"],
                "status": statuses,
                "failures": ["", "nordbank: lint x.php: Parse error", "", ""],
            }
        )

    last_night = matrix(["pass", "pass", "fail", "not declared"])
    tonight = matrix(["pass", "fail", "pass", "fail"])
    assert compat.regressions(last_night, tonight) == [
        "woocommerce 9.4 x PHP 8.5: nordbank: lint x.php: Parse error"
    ]  # fail -> pass and not declared -> fail are not regressions
    assert compat.regressions(None, tonight) == []
    assert compat.regressions(tonight, tonight) == []


def test_matrix_round_trips_through_parquet(tmp_path: Path):
    frame = pd.DataFrame({"platform": ["woocommerce"], "php_version": ["7.4"], "status": ["pass"]})
    path = compat.save_matrix(frame, tmp_path / "m" / "latest.parquet")
    pd.testing.assert_frame_equal(compat.load_matrix(path), frame)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(PspError, match=r"bad\.parquet: cannot read the stored compatibility matrix"):
        compat.load_matrix(tmp_path / "bad.parquet")


def test_heatmap_is_a_png_with_a_row_per_platform_version():
    def frame(rows: int) -> pd.DataFrame:
        data = [
            {"platform": "woocommerce", "platform_version": f"9.{i}", "php_version": php, "status": "pass"}
            for i in range(rows)
            for php in PHP_VERSIONS
        ]
        return pd.DataFrame(data)

    small, large = compat.heatmap_png(frame(2)), compat.heatmap_png(frame(12))
    assert small[:8] == large[:8] == b"\x89PNG\r\n\x1a\n"
    height = lambda png: struct.unpack(">I", png[20:24])[0]  # noqa: E731 - IHDR height
    assert height(large) > height(small)
    assert compat.png_data_uri(small).startswith("data:image/png;base64,iVBOR")


def test_every_php_template_in_the_repo_passes_its_declared_cells(fleet: Fleet, runtimes: PhpRuntimes):
    run = compat.run_matrix(fleet, TEMPLATES, runtimes)
    assert not {p: why for p, why in run.skipped_platforms.items() if "cannot be loaded" in why}
    declared = run.frame[run.frame["declared"]]
    assert set(declared["php_version"]) == set(PHP_VERSIONS)
    failing = declared[declared["status"] != "pass"]
    assert failing.empty, "\n".join(
        f"{r.platform} {r.platform_version} x PHP {r.php_version}: {r.failures}" for r in failing.itertuples()
    )
