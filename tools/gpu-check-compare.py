#!/usr/bin/env python3
"""benchrun's energy figures beside nvidia-smi's power readings, from the
folder tools/gpu-check.sh wrote (standard library only).

    tools/gpu-check-compare.py OUTDIR

For each stretch of the run that benchrun's power samples name (cell and
phase: the idle baseline, the warm-up, the measured run...), it integrates
benchrun's readings (each sample's `w` over the wall time since the one
before) and nvidia-smi's `power.draw` (each reading held until the next)
over the same wall-clock span, and prints both averages and their
difference; then the cell's own energy record (bench.energy: energy_j,
J per output token) beside nvidia-smi's energy over the measured run
divided by the same tokens.
"""
import datetime
import glob
import json
import os
import sys


def load_smi(path, tz_utc):
    rows = []
    with open(path) as f:
        for line in f:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) < 2:
                continue
            try:
                t = datetime.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f")
                w = float(parts[1])
            except ValueError:
                continue
            if tz_utc:
                t = t.replace(tzinfo=datetime.timezone.utc)
            rows.append((t.timestamp(), w))
    return rows


def smi_energy(rows, t0, t1):
    """Joules between t0 and t1 (s), each reading held until the next."""
    j = 0.0
    for (ta, w), (tb, _) in zip(rows, rows[1:]):
        a, b = max(ta, t0), min(tb, t1)
        if b > a:
            j += w * (b - a)
    return j


def main():
    out = sys.argv[1]
    clock = open(os.path.join(out, "clock.txt")).read().split("\n")
    tz_utc = len(clock) > 1 and clock[1].strip() in ("UTC", "GMT")
    smi = load_smi(os.path.join(out, "nvidia-smi.csv"), tz_utc)
    run = sorted(glob.glob(os.path.join(out, "results", "*")))[-1]
    groups = {}
    order = []
    with open(os.path.join(run, "samples.jsonl")) as f:
        for line in f:
            s = json.loads(line)
            if s.get("type") != "power" or s.get("w") is None or not s.get("wall_ns"):
                continue
            key = (s.get("cell") or "-", s.get("phase") or "-")
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append((s["wall_ns"] / 1e9, s["w"]))
    print("nvidia-smi: %d readings; benchrun power samples in %d stretches" % (len(smi), len(order)))
    print("%-28s %-10s %7s %9s %9s %9s %7s" % ("cell", "phase", "span s", "benchrun W", "smi W", "smi n", "diff"))
    for key in order:
        g = groups[key]
        if len(g) < 3:
            continue
        t0, t1 = g[0][0], g[-1][0]
        j = sum(w * (t - tp) for (tp, _), (t, w) in zip(g, g[1:]))
        sj = smi_energy(smi, t0, t1)
        n = sum(1 for t, _ in smi if t0 <= t <= t1)
        span = t1 - t0
        if span <= 0 or n == 0:
            continue
        bw, sw = j / span, sj / span
        print("%-28s %-10s %7.2f %9.1f %9.1f %9d %+6.1f%%" % (key[0][:28], key[1], span, bw, sw, n,
                                                         100 * (sw - bw) / bw if bw else 0))
    for path in sorted(glob.glob(os.path.join(run, "cells", "*.json"))):
        cell = json.load(open(path))
        e = cell.get("energy") or {}
        print("\ncell %s: energy %s" % (cell.get("id"), json.dumps(e, sort_keys=True)))
        if not e.get("energy_j") or not e.get("j_per_token"):
            continue
        tokens = e["energy_j"] / e["j_per_token"]
        g = groups.get((cell.get("id"), "run"))
        if not g:
            continue
        t0, t1 = g[0][0], g[-1][0]
        sj = smi_energy(smi, t0, t1)
        # benchrun's window may be a little longer than the samples' span:
        # compare power (J/s) and scale nvidia-smi's to the cell's window
        sw = sj / (t1 - t0)
        smi_j = sw * e["window_s"]
        print("  benchrun: %.1f J over %.2f s (%.1f W avg), %.0f output tokens, %.4f J/token, %.1f tok/s per W"
              % (e["energy_j"], e["window_s"], e["avg_w"], tokens, e["j_per_token"], e.get("tok_per_w", 0)))
        print("  nvidia-smi: %.1f W avg over the run's samples -> %.1f J over the window, %.4f J/token (%+.1f%%)"
              % (sw, smi_j, smi_j / tokens, 100 * (smi_j - e["energy_j"]) / e["energy_j"]))


if __name__ == "__main__":
    main()
