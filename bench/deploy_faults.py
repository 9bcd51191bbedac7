"""The seeded deploy fault campaign: at least 150 faults injected into real SFTP deploys, every invariant
checked after every fault, and the run's retry made and checked; prints per fault class: injected, held,
retry succeeded. The last line is a JSON object with the figures.

    .venv/bin/python bench/deploy_faults.py --seed 7 [--faults 160]
    .venv/bin/python bench/deploy_faults.py --rollback --seed 7 --faults 60
    .venv/bin/python bench/deploy_faults.py --parallel --seed 7 --faults 60

With --rollback, the faults go into KPI-triggered rollbacks (rollout_gate.restore_previous_release) of a
store from its second release back to its first, and a retry counts only when it ends on the first, the
second marked bad; "interrupted" counts faults that kept the attempt from finishing clean, and
"switched-unmarked" those that left the store on the first release without the mark (the retry finishes).

With --parallel, each fault lands while a client's three plugins deploy side by side (core/deploy/parallel.py,
deploy_plugin over one SftpPool) to six stores on two store hosts (two sshd, each behind its own proxy, its
stores on its own tmpfs): two plugins to one host, one plugin's staging and production on one host, one
plugin across both. Half the faults (by seed) run the plugins as the scheduler does, one thread per store
host; the other half name each plugin its own host, so two plugins deploy to one sshd at the same time,
each on its own pooled connection. The faults reach one host (sshd killed, connection cut or black-holed, disk full),
one plugin (a release that 500s, a trickled health body), one store (sick, a held or abandoned lock under
a skewed clock) or the whole process (SIGKILL at a random SFTP request counted over all its threads, a
hand install adopted, two runs racing to break stale locks); every invariant is then checked on every
store, and counted per invariant: the usual ones, plus one plugin's fault never reaches another plugin's
store, a production store is touched only after its staging store passed the gate with that release,
and the plugins the fault did not reach deploy in full.

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
    parser.add_argument("--parallel", action="store_true", help="faults into a client's deploys side by side")
    args = parser.parse_args()
    mode = "parallel" if args.parallel else "rollback" if args.rollback else "serial"
    print(f"seed {args.seed}, {args.faults} faults, {mode} campaign")

    user = fault_user()
    work = Path(tempfile.mkdtemp(prefix="psp-faults-"))
    work.chmod(0o755)
    try:
        figures = run_campaign(
            args.seed, args.faults, work, user, print if args.verbose else None, args.rollback, args.parallel
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    extra = " interrupted switched-unmarked" if args.rollback else ""
    print(f"{'fault class':16} {'injected':>8} {'held':>6} {'retry ok':>9}{extra}")
    for cls, row in figures["classes"].items():
        cut = f" {row['interrupted']:11} {row['switched_unmarked']:17}" if args.rollback else ""
        print(f"{cls:16} {row['injected']:8} {row['held']:6} {row['retry_succeeded']:9}{cut}")
    print(f"{'total':16} {figures['faults']:8} {figures['held']:6} {figures['retry_succeeded']:9}")
    if figures["invariants"]:
        print(f"{'invariant (every store, every fault)':40} {'checked':>8} {'broken':>7}")
        for name, row in figures["invariants"].items():
            print(f"{name:40} {row['checked']:8} {row['broken']:7}")
    if args.parallel:
        print(f"faults whose plugins deployed to one host at the same time: {figures['same_host_at_once']}")
    print(f"results not read back (store unreachable): {figures['results_reported_unknown']}")
    print(f"{figures['seconds']} s, load {' '.join(figures['load'])}")
    reader = figures["reader"]
    print(f"reader: {reader['reads']} reads, {reader['missing']} missing, {reader['torn']} torn")
    for line in figures["broken"]:
        print("BROKEN", line)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
