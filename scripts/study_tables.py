"""Tables and charts of scripts/agent-study.sh from the run directories it wrote.

Hypervolume is exact (2 and 3 objectives) over each run's feasible, scored episodes, with a
masking-flagged policy's robust accuracy credited as 0 (as the search and `bitsearch compare`
do). Usage: study_tables.py OUT "AGENTS" "SEEDS" "SMALL_EPISODES" "FULL_EPISODES"
"""

import csv
import math
import os
import statistics
import sys

SETS = {"acc x rob x lat": ("accuracy", "robust", "latency"), "acc x lat": ("accuracy", "latency")}
SENSE = {"accuracy": 1, "robust": 1, "latency": -1}


def points(path, limit=None):
    """Feasible scored episodes of an episodes.csv, first `limit` episodes."""
    pts = []
    with open(path) as f:
        for i, r in enumerate(csv.DictReader(f)):
            if limit is not None and i >= limit:
                break
            if r["failed"] == "true" or r["feasible"] != "true":
                continue
            flagged = r.get("masking_flagged") == "true"
            pts.append({
                "accuracy": float(r["accuracy"]),
                "robust": 0.0 if flagged else float(r["robust_accuracy"]),
                "latency": float(r["latency_s"]),
            })
    return pts


def gains(pts, objs, ref):
    """Points as gains over the reference (all maximized); only strictly better ones."""
    out = []
    for p in pts:
        g = tuple(SENSE[o] * (p[o] - ref[o]) for o in objs)
        if all(v > 0 for v in g):
            out.append(g)
    return out


def area(boxes):
    """Area of the union of [0,x]x[0,y] boxes."""
    total, best_y = 0.0, 0.0
    for x, y in sorted(boxes, reverse=True):
        if y > best_y:
            total += x * (y - best_y)
            best_y = y
    return total


def hypervolume(pts, objs, ref):
    g = gains(pts, objs, ref)
    if len(objs) == 2:
        return area(g)
    g.sort(key=lambda p: -p[2])
    vol = 0.0
    for i, p in enumerate(g):
        nxt = g[i + 1][2] if i + 1 < len(g) else 0.0
        vol += area([(q[0], q[1]) for q in g[: i + 1]]) * (p[2] - nxt)
    return vol


def worst(all_pts, objs):
    return {o: (min if SENSE[o] > 0 else max)(p[o] for p in all_pts) for o in objs}


def mean_sd(xs):
    if not xs:
        return "—"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def run_file(out, space, e, s, a):
    return os.path.join(out, space, f"{e}-s{s}", f"{a}-bitfusion", "episodes.csv")


def chart(path, title, curves, xmax):
    """An SVG line chart of mean hypervolume fraction vs episodes, one line per agent."""
    w, h, m = 640, 400, 50
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    ymin = min(min(v for _, v in c) for c in curves.values())
    ymin = math.floor(ymin * 10) / 10
    sx = lambda x: m + (w - 2 * m) * x / xmax
    sy = lambda y: h - m - (h - 2 * m) * (y - ymin) / (1 - ymin)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="{w/2}" y="20" text-anchor="middle">{title}</text>',
           f'<line x1="{m}" y1="{h-m}" x2="{w-m}" y2="{h-m}" stroke="black"/>',
           f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h-m}" stroke="black"/>',
           f'<text x="{w/2}" y="{h-10}" text-anchor="middle">episodes</text>']
    for k in range(11):
        y = ymin + (1 - ymin) * k / 10
        svg.append(f'<text x="{m-5}" y="{sy(y)+4}" text-anchor="end">{y:.2f}</text>')
    for x in range(0, xmax + 1, max(10, xmax // 10)):
        svg.append(f'<text x="{sx(x)}" y="{h-m+15}" text-anchor="middle">{x}</text>')
    for i, (agent, c) in enumerate(curves.items()):
        col = colors[i % len(colors)]
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in c)
        svg.append(f'<polyline fill="none" stroke="{col}" stroke-width="2" points="{pts}"/>')
        svg.append(f'<text x="{w-m-90}" y="{m+15*i}" fill="{col}">{agent}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg))


def study(out, space, agents, seeds, episodes, rows):
    files = {(e, s, a): run_file(out, space, e, s, a) for e in episodes for s in seeds for a in agents}
    files = {k: v for k, v in files.items() if os.path.exists(v)}
    if not files:
        return
    if space == "small":
        truth = points(os.path.join(out, "small", "exhaustive", "exhaustive-bitfusion", "episodes.csv"))
        pool = truth
    else:
        pool = [p for f in files.values() for p in points(f)]
        truth = pool
    marks = sorted(set([30] + episodes)) if space == "small" else sorted(set(episodes))
    print(f"\n### {space} space: hypervolume as a fraction of the {'exhaustive' if space == 'small' else 'best-known (union of all runs)'} front, mean ± sd over seeds {' '.join(map(str, seeds))}\n")
    for name, objs in SETS.items():
        ref = worst(pool, objs)
        total = hypervolume(truth, objs, ref)
        print(f"{name} (reference: " + ", ".join(f"{o} {ref[o]:.4g}" for o in objs) + ")\n")
        print("| agent | " + " | ".join(f"{k} episodes" for k in marks) + " |")
        print("|---|" + "---|" * len(marks))
        for a in agents:
            cells = []
            for k in marks:
                run_e = min([e for e in episodes if e >= k], default=None)
                vals = []
                for s in seeds:
                    f = files.get((run_e, s, a))
                    if f:
                        v = hypervolume(points(f, k), objs, ref) / total
                        vals.append(v)
                        rows.append([space, name, a, s, k, run_e, f"{v:.6f}"])
                cells.append(mean_sd(vals))
            print(f"| {a} | " + " | ".join(cells) + " |")
        print()
        if name == "acc x rob x lat":
            emax = max(episodes)
            curves = {}
            for a in agents:
                c = []
                for k in range(5, emax + 1, 5):
                    vals = [hypervolume(points(files[(emax, s, a)], k), objs, ref) / total
                            for s in seeds if (emax, s, a) in files]
                    if vals:
                        c.append((k, statistics.mean(vals)))
                if c:
                    curves[a] = c
            if curves:
                svg = os.path.join(out, f"hv-vs-episodes-{space}.svg")
                chart(svg, f"{space} space: mean HV fraction (acc x rob x lat) vs episodes", curves, emax)
                print(f"chart: {svg}\n")


def main():
    out, agents, seeds, small_e, full_e = sys.argv[1:6]
    agents, seeds = agents.split(), [int(s) for s in seeds.split()]
    rows = []
    study(out, "small", agents, seeds, [int(e) for e in small_e.split()], rows)
    study(out, "full", agents, seeds, [int(e) for e in full_e.split()], rows)
    with open(os.path.join(out, "study.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["space", "objectives", "agent", "seed", "episodes", "run_episodes", "hv_fraction"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
