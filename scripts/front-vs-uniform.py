#!/usr/bin/env python3
"""Where the uniform policies sit among a search's scored policies.

Usage: scripts/front-vs-uniform.py RUN_DIR

Reads RUN_DIR/episodes.csv and RUN_DIR/references.csv (an exhaustive run makes the episodes the
whole feasible space, so the fronts below are the true ones). Over the feasible, unfailed
episodes it prints the best validation accuracy, and for each feasible uniform reference: its
accuracy and latency, how many policies are more accurate, how many dominate it on accuracy x
latency and on accuracy x robust accuracy x latency (a masking-flagged policy is credited robust
accuracy 0, as the search credits it), and whether it is on each front. Standard library only.
"""

import csv
import sys
from pathlib import Path


def rows(path):
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["feasible"] != "true" or r["failed"] == "true":
                continue
            rob = 0.0 if r["masking_flagged"] == "true" else float(r["robust_accuracy"])
            yield {
                "policy": r["policy"],
                "acc": float(r["accuracy"]),
                "rob": rob,
                "lat": float(r["latency_s"]),
            }


def dominates(a, b, keys):
    """a dominates b: no worse on every objective (accuracy and robust up, latency down), better on one."""
    def better(k, x, y):
        return x > y if k != "lat" else x < y

    no_worse = all(not better(k, b[k], a[k]) for k in keys)
    return no_worse and any(better(k, a[k], b[k]) for k in keys)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    run = Path(sys.argv[1])
    episodes = list(rows(run / "episodes.csv"))
    uniforms = [u for u in rows(run / "references.csv") if u["policy"].split(",")[0].split("/")[0] != "32"]
    if not episodes:
        sys.exit(f"{run}/episodes.csv: no feasible scored policy")
    best = max(episodes, key=lambda e: (e["acc"], -e["lat"]))
    print(f"{run}: {len(episodes)} feasible scored policies")
    print(f"best validation accuracy {best['acc']:.2%}: {best['policy']} at {best['lat'] * 1e6:.2f} us")
    two, three = ["acc", "lat"], ["acc", "rob", "lat"]
    for u in sorted(uniforms, key=lambda u: u["lat"]):
        above = sum(e["acc"] > u["acc"] for e in episodes)
        dom2 = sum(dominates(e, u, two) for e in episodes)
        dom3 = sum(dominates(e, u, three) for e in episodes)
        print(
            f"uniform {u['policy'].split(',')[0]}: accuracy {u['acc']:.2%}, robust {u['rob']:.2%},"
            f" {u['lat'] * 1e6:.2f} us; {above} policies more accurate;"
            f" dominated by {dom2} on accuracy x latency ({'off' if dom2 else 'on'} that front),"
            f" by {dom3} on accuracy x robust x latency ({'off' if dom3 else 'on'} that front)"
        )


if __name__ == "__main__":
    main()
