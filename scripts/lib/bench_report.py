#!/usr/bin/env python3
"""Writes docs/benchmarks.md from a `scripts/bench` run: the headline ratios, the tables (medians
over interleaved rounds) for the single filters, the chains and the WAFs against ModSecurity, each
variant's targets checked, the harness table with linear memory after 1 and after 100,000 requests,
the versions and the exact commands. Called by scripts/bench only.

    bench_report.py WORK DOC CLK_TCK MIN_CORE ROUNDS DURATION WARMUP HARNESS_REQUESTS CONNECTIONS
                    MEMORY_REQUESTS HARNESS_SECONDS MEMORY_SECONDS SMOKE

With SMOKE=1 it fails (exit 1) unless every case and harness subject produced numbers."""

import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS_PY = os.path.join(HERE, "bench_variants.py")

# Harness targets from the filter issues (ns per request in the filters, over the harness's cost),
# module size limits (bytes) and linear memory limits (bytes), by harness subject.
HARNESS_TARGET_NS = {"header-strip": 5000, "request-id": 5000, "rate-limit": 3000, "waf": 20000}
MODULE_LIMIT_BYTES = {"header-strip": 300_000, "request-id": 300_000, "jwt-auth": 1_500_000, "waf": 4_000_000}
LINEAR_MEMORY_LIMIT = {"waf": 16 << 20, "waf-crs@get": 32 << 20, "waf-crs@post": 32 << 20}
CHAIN_VARIANTS = ("chain-no-waf", "shield-no-waf", "chain", "shield", "native-chain")

(work, doc, clk_tck, min_core, rounds_wanted, duration, warmup, harness_requests, connections,
 memory_requests, harness_seconds, memory_seconds, smoke) = sys.argv[1:]
clk_tck, min_core, duration, smoke = int(clk_tck), float(min_core), int(duration), smoke == "1"
harness_requests, memory_requests = int(harness_requests), int(memory_requests)



def variants_py(*args):
    return subprocess.run([sys.executable, VARIANTS_PY, *args], check=True, capture_output=True, text=True).stdout


meta = json.loads(variants_py("meta"))
VARIANTS, REQUEST_LABELS = meta["variants"], meta["requests"]
problems = []  # smoke: what did not produce numbers


def case_name(variant, request):
    return variant if request == "api" else f"{variant}@{request}"


# ---- the runs -------------------------------------------------------------------------------

runs = list(csv.DictReader(open(f"{work}/runs.tsv"), delimiter="\t"))
for r in runs:
    wall = int(r["wall_ns"]) / 1e9
    r["cpu_us"] = int(r["cpu_ticks"]) / clk_tck * 1e6 / max(int(r["requests"]), 1)
    r["core"] = int(r["cpu_ticks"]) / clk_tck / wall
    r["wrk_core"] = int(r["wrk_cpu_ms"]) / 1e3 / wall
    r["ok"] = r["core"] >= min_core
# Each (case, round) counts once: its attempt with the largest share of a core.
final = {}
for r in runs:
    key = (r["case"], r["round"])
    if key not in final or r["core"] > final[key]["core"]:
        final[key] = r
for r in final.values():
    r["kept"] = True
cases = list(dict.fromkeys(r["case"] for r in runs))
case_info = {r["case"]: (r["variant"], r["request"]) for r in runs}
rounds_done = len({rnd for (_, rnd) in final})
low = [r for r in final.values() if not r["ok"]]
round1_short = not any(r["ok"] for (_, rnd), r in final.items() if rnd == "1")
repeats = len(runs) - len(final)


def values(c, field):
    return [float(r[field]) for (case, _), r in final.items() if case == c]


def med(c, field):
    return statistics.median(values(c, field))


cpu = {c: med(c, "cpu_us") for c in cases}
rps = {c: med(c, "rps") for c in cases}
rss_end = {r["variant"]: int(r["rss_kb"]) for r in runs}
rss_start = {r["variant"]: int(r["rss_kb"]) for r in csv.DictReader(open(f"{work}/rss-start.tsv"), delimiter="\t")}
for c in cases:
    if not (cpu[c] > 0 and rps[c] > 0):
        problems.append(f"{c}: no CPU or requests/s measured")


def base_case(c):
    """The case c's added CPU is measured over: its variant's base, same request."""
    variant, request = case_info[c]
    base = VARIANTS[variant].get("base")
    return case_name(base, request) if base and case_name(base, request) in cpu else None


def added(c):
    b = base_case(c)
    return None if b is None or b == c else cpu[c] - cpu[b]


def counterpart_case(c):
    variant, request = case_info[c]
    other = VARIANTS[variant].get("counterpart")
    return case_name(other, request) if other and case_name(other, request) in cpu else None


def fmt_signed(x):
    return "—" if x is None else f"{x:+.2f}"


def ratio_text(ours, theirs):
    if ours is None or theirs is None:
        return "—"
    if theirs <= 0:
        return f"— (it adds {theirs:+.2f} µs)"
    ratio = ours / theirs
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.3f}× (1/{1 / ratio:,.0f})" if ratio > 0 else f"{ratio:.2f}×"


def row(c):
    variant, request = case_info[c]
    lo, hi = min(values(c, "cpu_us")), max(values(c, "cpu_us"))
    b = base_case(c)
    noop = "—" if request != "api" or variant in ("baseline", "noop") or "noop" not in cpu \
        or VARIANTS[variant]["server"] != "envoy" else fmt_signed(cpu[c] - cpu["noop"])
    cp = counterpart_case(c)
    versus = "—" if cp is None else f"{cp}: {ratio_text(added(c), added(cp))}"
    rps_ratio = "—" if b is None else f"{rps[c] / rps[b]:.2f}"
    rss = f"{rss_start.get(variant, 0) / 1024:.1f} → {rss_end[variant] / 1024:.1f}"
    return (f"| {c} | {VARIANTS[variant]['chain']} | {rps[c]:,.0f} | {med(c, 'p50_us'):,.0f} | {med(c, 'p99_us'):,.0f} "
            f"| **{cpu[c]:.2f}** | {lo:.2f}–{hi:.2f} | {fmt_signed(added(c))} | {noop} | {rps_ratio} | {versus} "
            f"| {med(c, 'core'):.0%} | {med(c, 'wrk_core'):.0%} | {rss} |")


HEADER = ("| case | chain | requests/s | p50 µs | p99 µs | CPU µs/request | min–max | added µs | over no-op "
          "| rps ratio | added ÷ counterpart's | server core | wrk core | RSS MiB (warm → end) |\n"
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")


def table(selected_cases):
    return HEADER + "\n" + "\n".join(row(c) for c in selected_cases) if selected_cases else "(no case measured)"


filter_cases = [c for c in cases if case_info[c][1] == "api" and case_info[c][0] not in CHAIN_VARIANTS]
chain_cases = [c for c in cases if case_info[c][0] in CHAIN_VARIANTS or c in ("baseline", "noop")]
waf_cases = [c for c in cases if case_info[c][1] != "api"]

# ---- targets --------------------------------------------------------------------------------


def verdict(ok):
    return "**met**" if ok else "**not met**"


targets = []
for c in cases:
    variant, request = case_info[c]
    for t in VARIANTS[variant].get("targets", []):
        if t.get("request", "api") != request:
            continue
        if "over" in t and case_name(t["over"], request) in cpu:
            over = case_name(t["over"], request)
            plus = cpu[c] - cpu[over]
            floor = VARIANTS[variant].get("floor")
            floor_text = ""
            if floor in cpu:
                floor_text = (f" (the floor, {floor}, already adds {cpu[floor] - cpu[over]:+.2f} µs: "
                              f"{c} adds {cpu[c] - cpu[floor]:+.2f} µs over it)")
            targets.append(f"- {c} adds ≤ {t['max_us']:g} µs of Envoy CPU per request over {over}: "
                           f"{plus:+.2f} µs, {verdict(plus <= t['max_us'])}{floor_text}.")
        elif "rps_of" in t and t["rps_of"] in rps:
            ratio = rps[c] / rps[t["rps_of"]]
            targets.append(f"- {c} serves ≥ {t['min_ratio']:.0%} of {t['rps_of']}'s requests/s: "
                           f"{ratio:.0%}, {verdict(ratio >= t['min_ratio'])}.")
        elif "cost_of" in t and t["cost_of"] in cpu:
            ours, theirs = added(c), added(t["cost_of"])
            ratio = ours / theirs if theirs and theirs > 0 else float("inf")
            targets.append(f"- {c} costs ≤ {t['max_ratio']}× {t['cost_of']}'s added CPU: {ours:.2f} vs "
                           f"{theirs:.2f} µs over baseline = {ratio:.2f}×, {verdict(ratio <= t['max_ratio'])}.")

# ---- the harness ----------------------------------------------------------------------------

subjects = [line.split("\t") for line in open(f"{work}/harness-subjects.tsv").read().splitlines() if line]
harness, memory = {}, {}
for key, fixture, title in subjects:
    reps = []
    for name in sorted(os.listdir(work)):
        if name.startswith(f"harness-{key}-") and name.endswith(".json") and name[len(f"harness-{key}-"):-5].isdigit():
            reps.append(json.load(open(os.path.join(work, name))))
    if not reps:
        problems.append(f"harness {key}: no result")
        continue
    reps.sort(key=lambda h: h["filter_ns_per_request"])
    harness[key] = (fixture, title, reps)
    before = json.load(open(f"{work}/memory-{key}-before.json"))
    after = json.load(open(f"{work}/memory-{key}-after.json"))
    memory[key] = (sum(before["memory_bytes"]), sum(after["memory_bytes"]), before["requests"], after["requests"])


def modules_of(key):
    """The module files a harness subject loads."""
    name = key.split("#")[0].split("@")[0]
    if name in VARIANTS and VARIANTS[name].get("modules"):
        return VARIANTS[name]["modules"]
    return [json.loads(variants_py("module", name))]


def module_bytes(key):
    paths = modules_of(key)
    return sum(os.path.getsize(p) for p in paths if os.path.exists(p)), len(paths)


harness_rows = []
for key, (fixture, title, reps) in harness.items():
    mid = reps[len(reps) // 2]
    size, count = module_bytes(key)
    before, after, n0, n = memory[key]
    growth = "none" if after == before else f"**{(after - before) / 1048576:+.2f} MiB**"
    bounded = "" if n >= memory_requests else " (bounded by time)"
    harness_rows.append(
        f"| {key} | {title} | {size:,}{f' ({count} modules)' if count > 1 else ''} | {mid['requests_per_second']:,.0f} "
        f"| {mid['ns_per_request']:,.0f} | {mid['baseline_ns_per_request']:,.0f} | **{mid['filter_ns_per_request']:,.0f}** "
        f"| {', '.join(format(x['filter_ns_per_request'], ',.0f') for x in reps)} "
        f"| {before / 1048576:.2f} after {n0:,} | {after / 1048576:.2f} after {n:,}{bounded} | {growth} |")
    limit = HARNESS_TARGET_NS.get(key)
    if limit:
        ns = mid["filter_ns_per_request"]
        targets.append(f"- {key} ({title}) in the harness < {limit / 1000:g} µs per request: {ns / 1000:.2f} µs, "
                       f"{verdict(ns < limit)}.")
    if key in MODULE_LIMIT_BYTES:
        targets.append(f"- {key} module < {MODULE_LIMIT_BYTES[key]:,} bytes: {size:,}, {verdict(size < MODULE_LIMIT_BYTES[key])}.")
    if key in LINEAR_MEMORY_LIMIT:
        limit = LINEAR_MEMORY_LIMIT[key]
        targets.append(f"- {key} linear memory < {limit / 1048576:g} MiB: {after / 1048576:.2f} MiB after {n:,} requests, "
                       f"{verdict(after < limit)}.")
startup = {r["variant"]: int(r["ready_ms"]) for r in csv.DictReader(open(f"{work}/startup.tsv"), delimiter="\t")}
if "waf-crs" in startup and "baseline" in startup:
    plugin_ms = startup["waf-crs"] - startup["baseline"]
    targets.append(f"- waf-crs plugin start-up < 1 s: Envoy ready after {startup['waf-crs'] / 1000:.2f} s, "
                   f"{plugin_ms / 1000:+.2f} s over the router alone, {verdict(plugin_ms < 1000)}.")
startup_rows = "\n".join(
    f"| {v} | {ms / 1000:.2f} | {(ms - startup['baseline']) / 1000:+.2f} | {rss_start.get(v, 0) / 1024:.1f} "
    f"| {rss_end.get(v, 0) / 1024:.1f} | {(rss_end.get(v, 0) - rss_start.get(v, 0)) / 1024:+.1f} |"
    if "baseline" in startup and VARIANTS[v]["server"] == "envoy" else
    f"| {v} | {ms / 1000:.2f} | — | {rss_start.get(v, 0) / 1024:.1f} | {rss_end.get(v, 0) / 1024:.1f} "
    f"| {(rss_end.get(v, 0) - rss_start.get(v, 0)) / 1024:+.1f} |"
    for v, ms in startup.items())
grown = [f"{k} ({b / 1048576:.2f} → {a / 1048576:.2f} MiB from request {n0:,} to {n:,})"
         for k, (b, a, n0, n) in memory.items() if a != b]
short = [f"{k} ({n:,})" for k, (_, _, _, n) in memory.items() if n < memory_requests]
if memory:
    targets.append(f"- Linear memory does not grow from the first requests to request {memory_requests:,}: "
                   + (verdict(True) + " for every subject" if not grown else f"{verdict(False)}: {'; '.join(grown)}")
                   + (f" (runs bounded by time, fewer requests: {', '.join(short)})." if short else "."))

# ---- notes ----------------------------------------------------------------------------------


def counters(v):
    path = f"{work}/stats-{v}.txt"
    if not os.path.exists(path):
        return {}, 0
    stats = dict(l.split(": ", 1) for l in open(path).read().splitlines() if ": " in l)
    return stats, int(stats.get("http.bench.downstream_rq_completed", "0"))


notes = []
for v in dict.fromkeys(case_info[c][0] for c in cases):
    work_counters = VARIANTS[v].get("work")
    if not work_counters:
        continue
    stats, total = counters(v)
    found = {c: int(stats[c]) for c in work_counters if c in stats}
    for counter in work_counters:
        if counter not in stats:
            notes.append(f"- {v}: counter `{counter}` **not found** in its Envoy's stats (renamed?).")
    if found and total > 0 and all(n == total for n in found.values()):
        notes.append(f"- {v} did its work on every request: {', '.join(f'`{c}`' for c in found)} = {total:,}, "
                     "the requests its Envoy completed.")
    else:
        for counter, done in found.items():
            notes.append(f"- {v} did its work **NOT on every request**: `{counter}` = {done:,} of the {total:,} "
                         "requests its Envoy completed.")
if low:
    notes.append(
        f"- **The server did not reach {min_core:.0%} of its core in {len(low)} of {len(final)} runs**, even when "
        f"repeated ({repeats} repeats in all; the attempt with the largest share is kept"
        f"{'; none of round 1 reached it, so later runs were not repeated' if round1_short else ''}). "
        "When neither the server nor wrk uses its whole core, the load is bound by the round trips between "
        "them or by other processes on the machine, not by the server's CPU: CPU µs/request are then higher and "
        "noisier than at saturation.")
else:
    notes.append(f"- The server had ≥ {min_core:.0%} of its core in every run kept ({repeats} repeats).")
notes.append("- A difference smaller than the cases' min–max spreads is noise, whatever its sign.")
if os.environ.get("BENCH_NOTE"):
    notes.append(f"- {os.environ['BENCH_NOTE']}")
if rounds_done < int(rounds_wanted):
    notes.append(f"- {rounds_done} of the {rounds_wanted} rounds wanted fitted in the time budget.")
skipped = [l for l in open(f"{work}/skipped.txt").read().splitlines() if l]
for line in skipped:
    notes.append(f"- Not measured in this run: {line.removeprefix('skipping ')}.")

# ---- headline -------------------------------------------------------------------------------

headline = []


def headline_vs(ours, theirs, what):
    if ours in cpu and theirs in cpu and added(ours) is not None and added(theirs) is not None:
        a, b = added(ours), added(theirs)
        if a <= 0:
            times = "no measurable cost"
        elif a <= b:
            times = f"{b / a:,.1f}× less" if b / a < 10 else f"{b / a:,.0f}× less"
        else:
            times = f"{a / b:,.1f}× **more**"
        headline.append(f"- {what}: **{ours} adds {a:,.1f} µs** of CPU per request, {theirs} adds {b:,.0f} µs "
                        f"({times}); {rps[ours]:,.0f} vs {rps[theirs]:,.0f} requests/s.")


headline_vs("waf-crs@get", "modsecurity@get", "CRS v4 PL1, benign browser GET")
headline_vs("waf-crs@post", "modsecurity@post", "CRS v4 PL1, benign 2 KB form POST")
headline_vs("waf@get", "modsecurity@get", "built-in rules against ModSecurity + CRS, benign browser GET")
headline_vs("waf@post", "modsecurity@post", "built-in rules against ModSecurity + CRS, benign 2 KB form POST")
for c in ("shield-no-waf", "chain-no-waf", "shield", "chain", "native-chain"):
    if c in cpu:
        headline.append(f"- {c}: adds **{added(c):+.1f} µs** per request over the router alone "
                        f"({rps[c]:,.0f} requests/s, RSS {rss_end[c] / 1024:.0f} MiB).")
for ours, theirs in (("shield", "chain"), ("shield-no-waf", "chain-no-waf")):
    if ours in cpu and theirs in cpu and added(ours) and added(theirs):
        headline.append(f"- {ours} costs {added(ours) / added(theirs):.2f}× the chain of separate modules "
                        f"({theirs}), RSS {rss_end[ours] / 1024:.0f} vs {rss_end[theirs] / 1024:.0f} MiB.")
if "modsecurity@get" in cpu and "modsecurity" in rss_end:
    headline.append(f"- nginx + ModSecurity worker RSS: {rss_end['modsecurity'] / 1024:.0f} MiB "
                    f"(plain nginx {rss_end.get('nginx', 0) / 1024:.0f} MiB); "
                    f"plain nginx serves {rps.get('nginx@get', 0):,.0f} GETs/s.")

# ---- the document ---------------------------------------------------------------------------

versions = dict(l.split(": ", 1) for l in open(f"{work}/versions.txt").read().splitlines() if ": " in l)
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
now = datetime.datetime.fromtimestamp(os.path.getmtime(f"{work}/runs.tsv"), datetime.timezone.utc).strftime(
    "%Y-%m-%d %H:%M UTC")  # when the last run ended
all_runs = "\n".join(
    f"| {r['case']} | {r['round']} | {r['attempt']} | {float(r['rps']):,.0f} | {r['cpu_us']:.2f} "
    f"| {r['core']:.0%} | {r['wrk_core']:.0%} | {'✓' if r.get('kept') else ''} |" for r in runs)
tick_us = 1e6 / clk_tck
requests_used = list(dict.fromkeys(case_info[c][1] for c in cases))
request_lines = "\n".join(f"- `{k}`: {REQUEST_LABELS[k]}: {variants_py('describe', k).strip()}" for k in requests_used)
harness_commands = "\n".join(
    f"target/debug/host-test bench {fixture} --case '{title}' --requests {n} --json"
    for key, (fixture, title, reps) in harness.items()
    for n in [f"{memory[key][2]} --warmup 0"] + [str(r["requests"]) for r in reps])
repeat_count = max(len(reps) for _, _, reps in harness.values()) if harness else 0
harness_repeats_text = (f"{repeat_count - 1} time{'s' if repeat_count > 2 else ''}, and once {memory_requests:,} times"
                        if repeat_count > 1 else f"once {memory_requests:,} times")
load_file = f"{work}/loadavg.txt"  # written by scripts/bench when the rounds end
uptime = open(load_file).read().split()[:3] if os.path.exists(load_file) else None
load_text = f" (load average when the rounds ended: {', '.join(uptime)})" if uptime else ""
env_text = "".join(f"{k}={os.environ[k]} " for k in ("BENCH_VARIANTS", "BENCH_ROUNDS", "BENCH_CONNECTIONS", "BENCH_NO_BUILD",
                                                   "BENCH_MODULES", "CRS_DIR") if os.environ.get(k))


def sha256_prefix(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


measured_variants = list(dict.fromkeys(case_info[c][0] for c in cases))
module_files = sorted({m for v in measured_variants for m in VARIANTS[v].get("modules", []) if os.path.exists(m)}
                      | {m for key in harness for m in modules_of(key) if os.path.exists(m)})
module_lines = "\n".join(f"- `{m}`: {os.path.getsize(m):,} bytes, sha256 {sha256_prefix(m)}…" for m in module_files)

text = f"""# Benchmarks

Measured by `scripts/bench{' --smoke' if smoke else ''}` on {now}: {cpu_model}, {os.cpu_count()} CPUs, Linux {platform.release()}{load_text}.
Envoy {versions.get('envoy', '?')}; nginx {versions.get('nginx', 'not installed')};
ModSecurity {versions.get('modsecurity', 'not installed')}; OWASP CRS {versions.get('crs', '?')}; {versions.get('rustc', '?')};
{versions.get('wrk', 'wrk ?')}. A shared virtual machine: compare the rows of one run, not runs of different days.

The modules measured:

{module_lines}

## Headline

{chr(10).join(headline) if headline else '- (no WAF or chain case in this run)'}

## How

One server per variant, pinned to CPU 0, loaded by wrk (one thread, {connections} connections, a static
request from a Lua script, pinned to CPU 1) for {duration} s per run, {rounds_done} rounds interleaved (each round
runs every case once, in the order of the tables, after {warmup} s of warm-up per case). Envoy runs with
`--concurrency 1`; its route answers with `direct_response` (200, `ok`; POSTs: see the notes), so no upstream
is involved and the variants differ only in their filter chain (`scripts/lib/bench_variants.py` writes every bootstrap).
nginx runs one worker (`worker_processes 1`) whose front server proxies (HTTP/1.1, kept-alive) to a
second server in the same worker answering 200 `ok`, so ModSecurity sees the arguments and the body of
each request; ModSecurity runs CRS from `{meta['crs_dir']}` (referenced, never copied:
`crs-setup.conf.example`, `tx.blocking_paranoia_level=1`, `rules/*.conf`, `SecRuleEngine On`). At start-up every
variant answers each of its requests with 200, and every WAF (waf, waf-crs, ModSecurity) answers an SQL
injection with 403, in the query and in a form body.

The requests (a case is named after its variant, with `@get` or `@post` for the WAF requests):

{request_lines}

**CPU µs/request**: the server's CPU time over the wrk window (utime + stime of the process, every
thread, from `/proc/<pid>/stat`: Envoy, or the nginx worker) divided by the requests wrk completed.
Medians over the rounds; *min–max* is the spread of the rounds. *added µs* is over the variant's base for
the same request (Envoy variants: baseline, the router alone; ModSecurity: plain nginx); *rps ratio* is
requests/s over the base's. *added ÷ counterpart's* divides the added µs by those of the native Envoy
filter or ModSecurity it competes with (below 1: cheaper). *server core* and *wrk core* are each one's
share of its CPU over the window (medians); latency is wrk's. RSS is the server's `VmRSS` (Envoy, or
the nginx worker) after the warm-up and at the end of the variant's last run.

## Single filters against Envoy's native filters (API request)

{table(filter_cases)}

## The chain of five modules, shield, and Envoy's native chain (API request)

{table(chain_cases)}

## WAF: waf and waf-crs in Envoy against nginx + ModSecurity v3 + CRS

{table(waf_cases)}

## Start-up and memory of each server

*ready after*: from the server's launch to Envoy's `/ready` (or nginx's first answer), servers
started one at a time; *over baseline*: what the filters' start-up (V8 compiling the modules, each
plugin's configuration) adds to Envoy's own. RSS is the server's `VmRSS` (Envoy, or the nginx
worker) after the warm-up and after the last round; the VMs' own linear memory is in the harness
table below (Envoy exposes no per-VM memory statistic).

| variant | ready after s | over baseline s | RSS after warm-up MiB | RSS at end MiB | change MiB |
| --- | ---: | ---: | ---: | ---: | ---: |
{startup_rows}

## Targets, as measured

A benchmark never fails on speed: it reports.

{chr(10).join(targets)}

## Notes

{chr(10).join(notes)}
- native-mutation is `envoy.filters.http.header_mutation` removing the five exact names of
  header-strip's default set. Envoy has no native removal by name prefix, so it does not cover the
  `x-auth-request-*` family; nor does it remove the `_` spellings, honour trusted sources, write an
  audit line or count metrics: it does less than header-strip.
- Envoy's own request-ID generation is off in every variant but native-request-id and native-chain
  (`generate_request_id: false`, as when the request-id filter owns the ID), so request-id's row is
  all of its work: a UUID v4, a `traceparent`, the response echo and the `wasm_shield.request_id` property.
- native-chain is Envoy's nearest equivalent of the chain: `header_mutation`, `generate_request_id`,
  `jwt_authn` (cache) and `local_ratelimit`; it has no WAF, so compare it with chain-no-waf and shield-no-waf.
- A `direct_response` route answers at the request headers, before any filter has seen a body: Envoy's
  POST cases are therefore proxied, body included, to a second listener of the same Envoy that answers
  200 (as nginx proxies to its second server). That listener's work is in every `@post` row of Envoy and
  cancels out of the *added µs*; at start-up each WAF must answer an SQL injection in a form field with 403.
- ModSecurity (`{work}/nginx-modsecurity/modsecurity.conf`, generated) runs its recommended engine settings
  with `SecRuleEngine On` and `SecResponseBodyAccess Off` (waf-crs inspects requests only; CRS's RESPONSE-*
  files are loaded as CRS installs them but see no response body), and audit logging of relevant (blocked)
  transactions only, which benign requests never are.
- `/proc/<pid>/stat` counts clock ticks ({clk_tck}/s, {tick_us:,.0f} µs each): a run of N requests is exact to
  ±{tick_us:,.0f}/N µs per request.

## In the harness (host-test bench)

`host-test bench` replays each case in wasmtime (after 1,000 warm-up requests) up to {harness_requests:,}
times, {harness_repeats_text} (a slow module gets fewer: each run is bounded to about
{harness_seconds} s); the median run is shown. *filter ns* is the time per request over the harness's own cost
of driving a request through an empty chain. The cases are every case of each filter's
`fixtures/bench.yaml`, and fixtures `scripts/bench` generates (in `{work}/`) for waf-crs, the chains and
shield, with the requests and configurations of the Envoy variants. *linear MiB* is the sum over the
chain's VMs after the first requests and after the longest run ({memory_requests:,} requests plus 1,000
of warm-up, fewer for a module too slow for that in {memory_seconds} s): it must not grow.

| subject | case | module bytes | requests/s | ns/request | harness ns/request | filter ns/request | filter ns, every run | linear MiB, first | linear MiB, last | growth |
| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |
{chr(10).join(harness_rows) if harness_rows else "(not run: BENCH_HARNESS=0)"}

## Commands

```sh
{env_text}{'scripts/bench --smoke' if smoke else 'scripts/bench'}    # all of the below; the configurations and wrk reports stay in {work}/
{harness_commands}
taskset -c 0 .venv/bin/envoy -c {work}/VARIANT.json --concurrency 1 --disable-hot-restart --log-level warning
taskset -c 0 nginx -c $PWD/{work}/nginx-VARIANT/nginx.conf -p $PWD/{work}/nginx-VARIANT/ -e $PWD/{work}/nginx-VARIANT/error.log
taskset -c 1 wrk -t1 -c{connections} -d{duration}s --timeout 10s --latency -s {work}/request-REQUEST.lua http://127.0.0.1:PORT/
```

<details><summary>Every run ({len(runs)}, repeats included)</summary>

| case | round | attempt | requests/s | CPU µs/request | server core | wrk core | kept |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |
{all_runs}

</details>
"""
open(doc, "w").write(text)
print(text)
if smoke and problems:
    sys.exit("bench --smoke: " + "; ".join(problems))
