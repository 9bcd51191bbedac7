"""The seeded deploy fault campaign: at least 150 faults injected into real SFTP deploys, every invariant
checked after every fault, and the run's retry made and checked; prints per fault class: injected, held,
retry succeeded. The last line is a JSON object with the figures.

    .venv/bin/python bench/deploy_faults.py --seed 7 [--faults 160]
    .venv/bin/python bench/deploy_faults.py --rollback --seed 7 --faults 60

With --rollback, the faults go into KPI-triggered rollbacks (rollout_gate.restore_previous_release) of a
store from its second release back to its first, and a retry counts only when it ends on the first, the
second marked bad; "interrupted" counts faults that kept the attempt from finishing clean, and
"switched-unmarked" those that left the store on the first release without the mark (the retry finishes).

Needs root (the deploy account, the sshd, a tmpfs for the store). Faults and invariants:
tests/integration/faults.py; what they mean: docs/deploys.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.faults import fault_user, run_campaign


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", type=int, default=160)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--rollback", action="store_true", help="the KPI-triggered rollback's campaign instead")
    args = parser.parse_args()

    user = fault_user()
    work = Path(tempfile.mkdtemp(prefix="psp-faults-"))
    work.chmod(0o755)
    try:
        figures = run_campaign(args.seed, args.faults, work, user, print if args.verbose else None, args.rollback)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    extra = " interrupted switched-unmarked" if args.rollback else ""
    print(f"{'fault class':16} {'injected':>8} {'held':>6} {'retry ok':>9}{extra}")
    for cls, row in figures["classes"].items():
        cut = f" {row['interrupted']:11} {row['switched_unmarked']:17}" if args.rollback else ""
        print(f"{cls:16} {row['injected']:8} {row['held']:6} {row['retry_succeeded']:9}{cut}")
    print(f"{'total':16} {figures['faults']:8} {figures['held']:6} {figures['retry_succeeded']:9}")
    reader = figures["reader"]
    print(f"reader: {reader['reads']} reads, {reader['missing']} missing, {reader['torn']} torn")
    for line in figures["broken"]:
        print("BROKEN", line)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
