"""The test report: real checks on a rendered plugin tree.

Each check returns `CheckResult`s; the lineage's test step (lineage.test_plugin) collects them into a
`TestReport`. The report is the gate in front of `built_artifact`: a failing check means no artifact for that
partition.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import re
import xml.dom.minidom
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from psp_assets.core.i18n import Catalog, parse_po, placeholders, placeholders_match
from psp_assets.core.runtimes.node import NodeUnavailable, default_node
from psp_assets.core.runtimes.php import PhpRuntime
from psp_assets.core.templates.spec import Rule, Template, Translations


@dataclass(frozen=True)
class CheckResult:
    check: str  # lint | contract | packaging | translations | secrets
    name: str  # what was checked: a file, a vector, a rule
    passed: bool
    detail: str = ""
    php_version: str | None = None


@dataclass
class TestReport:
    client_id: str
    platform: str
    plugin_version: str
    build: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            bucket = out.setdefault(r.check, {"passed": 0, "failed": 0})
            bucket["passed" if r.passed else "failed"] += 1
        return out

    def by_php_version(self) -> dict[str, dict[str, Any]]:
        """Each PHP version's result, oldest first: {"7.4": {"passed": False, "lint": {"passed": 26, "failed": 1},
        "contract": {...}}, ...} over the results that name a PHP version."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.results:
            if r.php_version is None or not re.fullmatch(r"\d+\.\d+", r.php_version):
                continue
            row = out.setdefault(r.php_version, {"passed": True})
            bucket = row.setdefault(r.check, {"passed": 0, "failed": 0})
            bucket["passed" if r.passed else "failed"] += 1
            row["passed"] = row["passed"] and r.passed
        return dict(sorted(out.items(), key=lambda item: tuple(int(x) for x in item[0].split("."))))

    def to_json(self) -> str:
        data: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "results"}
        data["passed"] = self.passed
        data["counts"] = self.counts()
        data["php_versions"] = self.by_php_version()
        data["results"] = [asdict(r) for r in self.results]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TestReport:
        data = json.loads(text)
        results = [CheckResult(**r) for r in data.pop("results")]
        for derived in ("passed", "counts", "php_versions"):
            data.pop(derived, None)
        return cls(results=results, **data)


# --- the checks -------------------------------------------------------------------------------------


TEXT_SUFFIXES = (
    ".php",
    ".phtml",
    ".js",
    ".json",
    ".xml",
    ".txt",
    ".md",
    ".po",
    ".pot",
    ".csv",
    ".toml",
    ".html",
    ".css",
    ".yml",
    ".yaml",
)

SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "private key block": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "live API key": re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{16,}"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abpr]-[0-9A-Za-z-]{10,}"),
}
GETTEXT_CALL = re.compile(
    r"(?<![\w>$])(?:__|_e|esc_html__|esc_html_e|esc_attr__|esc_attr_e|\$t)\(\s*'((?:[^'\\]|\\.)*)'"
)


def match_glob(path: str, pattern: str) -> bool:
    """Glob where `**/` also matches zero folders (so `**/*.php` includes top-level files)."""
    return fnmatch.fnmatch(path, pattern) or (pattern.startswith("**/") and fnmatch.fnmatch(path, pattern[3:]))


def _text(files: Mapping[str, bytes], path: str) -> str | None:
    data = files.get(path)
    return None if data is None else data.decode("utf-8", errors="replace")


def check_lint(root: Path, files: Iterable[str], template: Template, php: PhpRuntime) -> list[CheckResult]:
    if not template.spec.lint_globs:  # the template declares no PHP (e.g. a Node app)
        return []
    targets = [f for f in files if any(match_glob(f, g) for g in template.spec.lint_globs)]
    if not targets:
        return [CheckResult("lint", "(php files)", False, "no PHP file matched lint_globs", php.version)]
    return [CheckResult("lint", r.path, r.ok, r.message, php.version) for r in php.lint(root, targets)]


def check_js_syntax(root: Path, files: Iterable[str], template: Template, node: Any = None) -> list[CheckResult]:
    """`node --check` on every file matching the template's js_check_globs (none declared: no check)."""
    globs = template.spec.js_check_globs
    if not globs:
        return []
    targets = [f for f in files if any(match_glob(f, g) for g in globs)]
    if not targets:
        return [CheckResult("js", "(js files)", False, "no JavaScript file matched js_check_globs")]

    try:
        runtime = node or default_node()
    except NodeUnavailable as exc:
        return [CheckResult("js", "(js files)", False, str(exc))]
    return [CheckResult("js", r.path, r.ok, r.message) for r in runtime.check_syntax(root, targets)]


def _rule_result(rule: Rule, files: Mapping[str, bytes], render: Callable[[str], str]) -> CheckResult:
    name = f"{rule.rule}: {rule.message}"

    def fail(detail: str) -> CheckResult:
        return CheckResult("packaging", name, False, detail)

    if rule.rule == "required":
        missing = [p for p in (render(f) for f in rule.files) if p not in files]
        return fail(f"missing: {', '.join(missing)}") if missing else CheckResult("packaging", name, True)
    if rule.rule == "every":
        pattern = re.compile(render(rule.pattern or ""), re.M)
        matched = [p for p in sorted(files) if match_glob(p, render(rule.glob or ""))]
        bad = [p for p in matched if not pattern.search(_text(files, p) or "")]
        if not matched:
            return fail(f"no file matches {rule.glob}")
        return fail(f"not in: {', '.join(bad[:10])}") if bad else CheckResult("packaging", name, True)
    if rule.rule == "each_folder":
        wanted = render(rule.file or "")
        folders: set[str] = set()
        for path in files:  # every folder of the tree, the root ("") and folders holding only folders included
            parts = path.split("/")[:-1]
            folders |= {"/".join(parts[:i]) for i in range(len(parts) + 1)}
        if rule.glob:
            folders = {f for f in folders if match_glob(f + "/", render(rule.glob))}
        expected = (f"{f}/{wanted}" if f else wanted for f in folders)
        missing = sorted(p for p in expected if p not in files)
        return fail(f"missing: {', '.join(missing[:10])}") if missing else CheckResult("packaging", name, True)
    if rule.rule == "xml_wellformed":
        bad = []
        for p in sorted(files):
            if match_glob(p, render(rule.glob or "")):
                try:
                    xml.dom.minidom.parseString(files[p])
                except Exception as exc:
                    bad.append(f"{p}: {exc}")
        return fail("; ".join(bad[:5])) if bad else CheckResult("packaging", name, True)
    path = render(rule.file or "")
    text = _text(files, path)
    if text is None:
        return fail(f"{path} is missing")
    if rule.rule == "matches":
        ok = re.search(render(rule.pattern or ""), text, re.M) is not None
        return CheckResult("packaging", name, ok, "" if ok else f"{path} does not match {render(rule.pattern or '')!r}")
    if rule.rule == "same":
        first = re.search(render(rule.pattern or ""), text, re.M)
        other_path = render(rule.other_file or "")
        other_text = _text(files, other_path) or ""
        second = re.search(render(rule.other_pattern or ""), other_text, re.M)
        if not first or not second:
            return fail(f"value not found in {path if not first else other_path}")
        ok = first.group(1).strip() == second.group(1).strip()
        detail = f"{path}: {first.group(1).strip()!r} != {other_path}: {second.group(1).strip()!r}"
        return CheckResult("packaging", name, ok, "" if ok else detail)
    if rule.rule == "at_least":
        found = re.search(render(rule.pattern or ""), text, re.M)
        minimum = render(rule.minimum or "")
        if not found:
            return fail(f"{path} does not match {render(rule.pattern or '')!r}")
        ok = _version_key(found.group(1).strip()) >= _version_key(minimum)
        return CheckResult("packaging", name, ok, "" if ok else f"{path}: {found.group(1).strip()} < {minimum}")
    if rule.rule == "json_equals":
        try:
            value: object = json.loads(text)
            for key in (rule.field or "").split("."):
                value = value[key] if isinstance(value, dict) else None
        except json.JSONDecodeError as exc:
            return fail(f"{path}: invalid JSON: {exc}")
        expected = render(rule.equals or "")
        ok = value == expected
        return CheckResult(
            "packaging", name, ok, "" if ok else f"{path}: {rule.field} is {value!r}, expected {expected!r}"
        )
    return fail(f"unknown rule {rule.rule}")


def _version_key(version: str) -> tuple[int, ...]:
    """6.10 > 6.9; a part that is not a number counts as 0 (so a malformed version never passes a minimum)."""
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def check_rule(rule: Rule, files: Mapping[str, bytes], render: Callable[[str], str]) -> CheckResult:
    """One convention rule on a tree (what check_packaging does for each rule of a template)."""
    return _rule_result(rule, files, render)


def check_packaging(template: Template, files: Mapping[str, bytes], render: Callable[[str], str]) -> list[CheckResult]:
    return [_rule_result(rule, files, render) for rule in template.spec.rules]


def check_translations(
    files: Mapping[str, bytes],
    catalog: Catalog,
    locales: Iterable[str],
    spec: Translations | None = None,
    render: Callable[[str, str], str] | None = None,
    codes: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Strings used in code are catalog messages, and every client locale ships complete translations.

    First, every client locale must translate every catalog message (`check_catalog`) with the message's
    placeholders (`check_placeholders`). Then, with a template's `translations` spec (`render(text, locale)`
    renders its per-locale paths), the calls and file formats come from the template; without one, gettext
    calls and .po/.csv files named by `codes` (catalog locale -> the platform's code, default the locale)
    are checked. Every shipped file's translations must keep their message's placeholders too.
    """
    locales = list(locales)
    results = check_catalog(catalog, locales) + check_placeholders(catalog, locales)
    if spec is not None:
        renderer = render or (lambda text, _loc: text)
        return results + _check_declared_translations(files, catalog, locales, spec, renderer)
    known = set(catalog.messages)
    for path in sorted(files):
        if path.endswith((".php", ".phtml", ".js")):
            text = _text(files, path) or ""
            used = {m.replace("\\'", "'") for m in GETTEXT_CALL.findall(text)}
            unknown = sorted(used - known)
            results.append(
                CheckResult(
                    "translations",
                    f"strings in {path}",
                    not unknown,
                    "" if not unknown else "not in the message catalog: " + "; ".join(map(repr, unknown[:10])),
                )
            )
    for locale in locales:
        found = False
        code = (codes or {}).get(locale, locale)
        for path in sorted(files):
            name = path.rsplit("/", 1)[-1]
            if not (name.endswith(f"-{code}.po") or name == f"{code}.po" or name == f"{code}.csv"):
                continue
            found = True
            text = _text(files, path) or ""
            table = parse_po(text) if name.endswith(".po") else _parse_csv(text)
            missing = [m for m in catalog.messages if not table.get(m)]
            results.append(
                CheckResult(
                    "translations",
                    f"{locale}: {path}",
                    not missing,
                    "" if not missing else f"{locale}: untranslated message ids: " + "; ".join(map(repr, missing[:10])),
                )
            )
            results.append(_placeholder_result(locale, path, table))
        if not found:
            results.append(
                CheckResult("translations", f"{locale}: translation file", False, f"{locale}: no .po or .csv ships it")
            )
    return results


def check_placeholders(catalog: Catalog, locales: Iterable[str]) -> list[CheckResult]:
    """One result per client locale: each translation keeps its message's placeholders (%s, %1$s, {name}):
    the same ones, as often (positional ones may be reordered). A failure names the locale, each message id
    and the placeholders it needs; those translations render empty, so no platform formats them wrongly."""
    results = []
    for locale in locales:
        wrong = catalog.mismatched.get(locale, ())
        shown = "; ".join(f"{m!r} (needs {' '.join(placeholders(m)) or 'none'})" for m in wrong[:10])
        shown += f" and {len(wrong) - 10} more" if len(wrong) > 10 else ""
        where = f"templates/_shared/i18n/{locale}.yaml"
        detail = f"{locale}: placeholders differ from the message in {where} for message id(s) {shown}" if wrong else ""
        results.append(CheckResult("translations", f"{locale}: translation placeholders", not wrong, detail))
    return results


def _placeholder_result(locale: str, path: str, table: Mapping[str, str]) -> CheckResult:
    """The shipped file `path` keeps every message's placeholders in its (non-empty) translations."""
    wrong = sorted(m for m, text in table.items() if m and text and not placeholders_match(m, text))
    detail = f"{path}: placeholders differ from the message in " + "; ".join(map(repr, wrong[:10])) if wrong else ""
    return CheckResult("translations", f"{locale}: placeholders in {path}", not wrong, detail)


def check_catalog(catalog: Catalog, locales: Iterable[str]) -> list[CheckResult]:
    """One result per client locale: it translates every message of templates/_shared/i18n/messages.yaml.
    A failure names the locale and each untranslated message id, whatever file formats the platform ships."""
    results = []
    for locale in locales:
        missing = catalog.missing.get(locale, ())
        shown = "; ".join(map(repr, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        where = "the source catalog" if locale == catalog.source_locale else f"templates/_shared/i18n/{locale}.yaml"
        detail = f"{locale}: no translation in {where} for message id(s) {shown}" if missing else ""
        results.append(CheckResult("translations", f"{locale}: translation catalog", not missing, detail))
    return results


def _check_declared_translations(
    files: Mapping[str, bytes],
    catalog: Catalog,
    locales: list[str],
    spec: Translations,
    render: Callable[[str, str], str],
) -> list[CheckResult]:
    results: list[CheckResult] = []
    known = set(catalog.messages)
    calls = [re.compile(c) for c in spec.calls]
    for path in sorted(files):
        if calls and any(match_glob(path, g) for g in spec.code_globs):
            text = _text(files, path) or ""
            used = {_unquote(m.group(1)) for c in calls for m in c.finditer(text)}
            unknown = sorted(used - known)
            detail = "" if not unknown else "not in the message catalog: " + "; ".join(map(repr, unknown[:10]))
            results.append(CheckResult("translations", f"strings in {path}", not unknown, detail))
    keysets: dict[str, tuple[str, dict[str, str]]] = {}  # php_array file spec -> (first locale, its table)
    for locale in locales:
        merged: dict[str, str] = {}
        for index, declared in enumerate(spec.files):
            path = render(declared.path, locale)
            text = _text(files, path)
            if text is None:
                results.append(CheckResult("translations", f"{locale}: {path}", False, f"{locale}: {path} is missing"))
                continue
            try:
                table = _parse_translation_file(text, declared.format)
            except ValueError as exc:
                results.append(CheckResult("translations", f"{locale}: {path}", False, f"{path}: {exc}"))
                continue
            empty = sorted(k for k, v in table.items() if not v.strip())
            problem = f"{path}: empty translations for {', '.join(map(repr, empty[:10]))}" if empty else ""
            if declared.format == "php_array":
                # keyed by the platform's own keys: placeholders are compared with the first locale's file
                first = keysets.setdefault(f"{index}", (locale, table))
                if set(table) != set(first[1]):
                    diff = sorted(set(table) ^ set(first[1]))
                    problem = problem or f"{path}: keys differ from the {first[0]} file: {', '.join(diff[:10])}"
                wrong = sorted(k for k, v in table.items() if k in first[1] and not placeholders_match(first[1][k], v))
                detail = f"{path}: placeholders differ from the {first[0]} file in {', '.join(wrong[:10])}"
                results.append(
                    CheckResult("translations", f"{locale}: placeholders in {path}", not wrong, detail if wrong else "")
                )
            else:
                merged.update(table)
                results.append(_placeholder_result(locale, path, table))
            results.append(CheckResult("translations", f"{locale}: {path}", not problem, problem))
        msgid_keyed = [f for f in spec.files if f.format != "php_array"]
        if spec.complete and msgid_keyed:
            missing = [m for m in catalog.messages if not merged.get(m)]
            detail = "" if not missing else f"{locale}: untranslated message ids: " + "; ".join(map(repr, missing[:10]))
            results.append(CheckResult("translations", f"{locale}: every catalog message", not missing, detail))
    return results


def _unquote(literal: str) -> str:
    return literal.replace("\\'", "'").replace('\\"', '"')


_PHP_ARRAY_ENTRY = re.compile(r"^\$_\['([A-Za-z0-9_.]+)'\]\s*=\s*'((?:[^'\\]|\\.)*)';\s*$", re.M)


def _parse_translation_file(text: str, fmt: str) -> dict[str, str]:
    """Message (or key) -> translation of one shipped translation file."""
    if fmt == "po":
        return parse_po(text)
    if fmt == "csv":
        return _parse_csv(text)
    if fmt == "json":
        data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError("a JSON catalog must be one object of message -> translated string")
        return data
    if fmt == "xliff":
        doc = xml.dom.minidom.parseString(text.encode())
        table = {}
        for unit in doc.getElementsByTagName("trans-unit"):
            source = unit.getElementsByTagName("source")
            target = unit.getElementsByTagName("target")
            if source:
                key = "".join(n.data for n in source[0].childNodes if n.nodeType == n.TEXT_NODE)
                texts = target[0].childNodes if target else []
                table[key] = "".join(n.data for n in texts if n.nodeType == n.TEXT_NODE)
        return table
    if fmt == "php_array":  # OpenCart language files: $_['key'] = 'single-quoted literal';
        return {k: re.sub(r"\\([\\'])", r"\1", v) for k, v in _PHP_ARRAY_ENTRY.findall(text)}
    raise ValueError(f"unknown translation format {fmt!r}")


def _parse_csv(text: str) -> dict[str, str]:
    return {row[0]: row[1] for row in csv.reader(io.StringIO(text)) if len(row) >= 2}


def check_secrets(
    files: Mapping[str, bytes], secret_values: Iterable[str], forbidden_paths: Iterable[str]
) -> list[CheckResult]:
    findings: list[str] = []
    secrets = [s for s in secret_values if len(s) >= 8]
    paths = sorted({p.rstrip("/") for p in forbidden_paths if len(p.rstrip("/")) > 1}, key=len, reverse=True)
    for path in sorted(files):
        text = files[path].decode("utf-8", errors="replace")
        for label, pattern in SECRET_PATTERNS.items():
            if pattern.search(text):
                findings.append(f"{path}: {label}")
        if any(s in text for s in secrets):
            findings.append(f"{path}: a configured secret value")  # never echo the value itself
        for forbidden in paths:
            if forbidden + "/" in text or text.endswith(forbidden):
                findings.append(f"{path}: absolute build path {forbidden}")
                break
    return [CheckResult("secrets", "no secrets or build paths in the tree", not findings, "; ".join(findings[:20]))]
