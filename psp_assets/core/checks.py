"""The test report: real checks on a rendered plugin tree.

Each check returns `CheckResult`s; `run_checks` collects them into a `TestReport`. The report is the
gate in front of `built_artifact`: a failing check means no artifact for that partition.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


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

    def to_json(self) -> str:
        data: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "results"}
        data["passed"] = self.passed
        data["counts"] = self.counts()
        data["results"] = [asdict(r) for r in self.results]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TestReport:
        data = json.loads(text)
        results = [CheckResult(**r) for r in data.pop("results")]
        for derived in ("passed", "counts"):
            data.pop(derived, None)
        return cls(results=results, **data)
