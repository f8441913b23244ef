#!/usr/bin/env python3
"""Helpers for bench/run.sh (standard library only).

  snap SRCDATA DSTDATA OURPID [TOOLPID]   one JSON line: machine and per-group CPU ticks
  gate MAXWAIT BUSYPCT                    waits for a quiet 5 s window; JSON result
  wait PSQL... -- SQL UNTIL INTERVAL TIMEOUT [PID]
                                          polls SQL (one psql session, \\watch) until its
                                          value equals UNTIL (fails once PID is gone);
                                          JSON with first change / done
  elapsed WAITJSON T0                     "total start-up drain" seconds since T0
  lag DSTPSQL... -- FROM_EPOCH            staleness percentiles from bench.bench_lag_log
  record FILE SNAP0 SNAP1 key=value...    writes one run's JSON; prints "noisy|quiet foreign_cpu_s gate_busy_pct"
  summary OUTDIR                          writes OUTDIR/summary.md from OUTDIR/runs/*.json

CPU is counted in clock ticks from /proc: a process group's CPU is the
utime+stime+cutime+cstime of its root and of every live descendant, so
children that exited (and were reaped inside the group) stay counted.
"""
import glob
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def proc_table():
    """pid -> (ppid, ticks) for every process, ticks = utime+stime+cutime+cstime."""
    table = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        pid = int(path.split("/")[2])
        table[pid] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return table


def tree_ticks(table, root, skip=()):
    """CPU ticks of root and its live descendants (subtrees rooted in skip left out)."""
    if root not in table:
        return 0
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in skip:
            continue
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total


def irq_time_accounting():
    """True when the kernel keeps irq time out of task times (CONFIG_IRQ_TIME_ACCOUNTING)."""
    for path in ("/proc/config.gz", f"/boot/config-{platform.release()}"):
        try:
            if path.endswith(".gz"):
                text = gzip.open(path, "rt").read()
            else:
                text = open(path).read()
        except OSError:
            continue
        return "CONFIG_IRQ_TIME_ACCOUNTING=y" in text
    return False


def machine_ticks():
    """(busy, tasks, total) jiffies of the whole machine from /proc/stat: busy is
    everything but idle and iowait (the gate); tasks leaves out irq and softirq
    time, which a kernel with irq time accounting charges to no process (on this
    bench mostly our own loopback traffic), but keeps steal (another guest)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal  # guest is inside user
    return total - idle - iowait, user + nice + system + steal, total


def postmaster(datadir):
    try:
        with open(os.path.join(datadir, "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def cmd_snap(src, dst, ours, tool=None):
    table = proc_table()
    busy, tasks, total = machine_ticks()
    pms = {k: postmaster(d) for k, d in (("src", src), ("dst", dst))}
    snap = {"t": time.time(), "busy": busy, "tasks": tasks, "total": total}
    for k, pm in pms.items():
        snap[k] = tree_ticks(table, pm) if pm else 0
    snap["ours"] = tree_ticks(table, int(ours), skip={p for p in pms.values() if p})
    snap["tool"] = tree_ticks(table, int(tool)) if tool else 0
    print(json.dumps(snap))


def cmd_gate(maxwait, busy_pct):
    maxwait, busy_pct = float(maxwait), float(busy_pct)
    start = time.time()
    while True:
        b0, _, t0 = machine_ticks()
        time.sleep(5)
        b1, _, t1 = machine_ticks()
        pct = 100.0 * (b1 - b0) / max(1, t1 - t0)
        waited = time.time() - start
        if pct < busy_pct or waited + 5 > maxwait:
            print(json.dumps({"gate_ok": pct < busy_pct, "gate_busy_pct": round(pct, 1),
                              "gate_wait_s": round(waited, 1)}))
            return


def alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_wait(args):
    """Poll one value through a single psql session until it equals `until`;
    give up when the consumer process (optional pid) has died."""
    sep = args.index("--")
    psql, (sql, until, interval, timeout, *pid) = args[:sep], args[sep + 1 :]
    proc = subprocess.Popen(psql + ["-At"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.stdin.write(f"{sql} \\watch {interval}\n")
    proc.stdin.flush()
    start, first, value, initial = time.time(), None, None, None
    deadline = start + float(timeout)
    try:
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            now = time.time()
            if initial is None:
                initial = line
            elif first is None and line != initial:
                first = now
            value = line
            if line == until:
                first = first or now
                print(json.dumps({"t_start": start, "t_first_change": first, "t_done": now}))
                return
            if now > deadline or (pid and pid[0] and not alive(pid[0])):
                break
    finally:
        proc.terminate()
        proc.wait()
    why = "the consumer exited" if pid and pid[0] and not alive(pid[0]) else f"timed out after {timeout} s"
    sys.exit(f"wait: {why}: {sql!r} is {value!r}, want {until!r}")


def cmd_elapsed(path, t0):
    """From a `wait` result and a start time: total, start-up (to the first change) and drain seconds."""
    w, t0 = json.load(open(path)), float(t0)
    print(f"{w['t_done'] - t0:.3f} {w['t_first_change'] - t0:.3f} {w['t_done'] - w['t_first_change']:.3f}")


def cmd_lag(args):
    """Staleness percentiles (ms) of the heartbeat: applied (row trigger clock) and
    visible (deferred trigger clock, at the destination transaction's commit)."""
    sep = args.index("--")
    psql, since = args[:sep], float(args[sep + 1])
    sql = f"""
      with s as (
        select extract(epoch from l.dst_ts - l.src_ts) * 1000 as applied,
               extract(epoch from c.commit_ts - l.src_ts) * 1000 as visible
        from bench.bench_lag_log l left join bench.bench_commit_log c using (src_ts)
        where l.src_ts >= to_timestamp({since}))
      select json_build_object('samples', count(*),
        'p50_ms', percentile_cont(0.5) within group (order by applied),
        'p95_ms', percentile_cont(0.95) within group (order by applied),
        'p99_ms', percentile_cont(0.99) within group (order by applied),
        'max_ms', max(applied),
        'visible_p50_ms', percentile_cont(0.5) within group (order by visible),
        'visible_p99_ms', percentile_cont(0.99) within group (order by visible),
        'visible_max_ms', max(visible)) from s"""
    out = subprocess.run(psql + ["-At", "-c", sql], check=True, capture_output=True, text=True)
    print(out.stdout.strip())


def typed(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    if v in ("true", "false"):
        return v == "true"
    if v.startswith("{"):
        return json.loads(v)
    return v


def cmd_record(path, snap0, snap1, pairs):
    run = {}
    for kv in pairs:
        k, _, v = kv.partition("=")
        val = typed(v)
        if k == "-":  # a JSON object of fields (gate, wait and lag results)
            run.update(val)
        else:
            run[k] = val
    a, b = (json.load(open(p)) for p in (snap0, snap1))
    wall = b["t"] - a["t"]
    d = {k: (b[k] - a[k]) / HZ for k in ("busy", "tasks", "src", "dst", "ours", "tool")}
    # the tool runs inside our process tree (a foreground child measured by
    # /usr/bin/time, or a background pgsync whose pid the snapshots follow)
    tool_cpu = run.get("tool_cpu_s", d["tool"])
    # without irq time accounting (Debian's default) task times include the
    # interrupts served while they ran, so the machine's irq time is ours too
    machine = d["tasks"] if irq_time_accounting() else d["busy"]
    foreign = machine - d["src"] - d["dst"] - d["ours"]
    run.update({
        "window_s": round(wall, 3),
        "cores": CORES,
        "machine_busy_cpu_s": round(d["busy"], 2),
        "machine_irq_cpu_s": round(d["busy"] - d["tasks"], 2),
        "src_pg_cpu_s": round(d["src"], 2),
        "dst_pg_cpu_s": round(d["dst"], 2),
        "tool_cpu_s": round(tool_cpu, 2),
        "bench_cpu_s": round(d["ours"] - tool_cpu, 2),
        "foreign_cpu_s": round(foreign, 2),
    })
    run["noisy"] = foreign > 0.05 * wall * CORES
    gb = run.get("data_bytes", 0) / 1e9
    if gb > 0:
        run["tool_cpu_s_per_gb"] = round(tool_cpu / gb, 2)
    with open(path, "w") as f:
        json.dump(run, f, indent=1, sort_keys=True)
    print("noisy" if run["noisy"] else "quiet", run["foreign_cpu_s"], run["gate_busy_pct"])


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    if x is None:
        return "–"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def cmd_summary(out):
    runs = [json.load(open(p)) for p in sorted(glob.glob(f"{out}/runs/*.json"))]
    meta = json.load(open(f"{out}/meta.json"))
    # the run kept for each (scenario, rep, tool): the last attempt
    kept = {}
    for r in runs:
        key = (r["scenario"], r["rep"], r["tool"])
        if key not in kept or r["attempt"] > kept[key]["attempt"]:
            kept[key] = r
    L = [f"# pgsync benchmark {meta['started']}", "",
         f"machine: {meta['machine']}", f"PostgreSQL: {meta['pg']}; pgsync: {meta['pgsync']}; "
         f"pgcopydb: {meta['pgcopydb']}", f"command: `{meta['command']}`", f"settings: {meta['settings']}", ""]

    def by_rep(sc):
        reps = {}
        for (s, rep, tool), r in kept.items():
            if s == sc:
                reps.setdefault(rep, {})[tool] = r
        return reps

    def tools_of(sc):
        return sorted({t for (s, _, t) in kept if s == sc}, key=lambda t: (t != "pgsync", t))

    def ratio(sc, tool, metric):
        rs = [d["pgsync"][metric] / d[tool][metric] for d in by_rep(sc).values()
              if tool in d and "pgsync" in d and d[tool].get(metric) and d["pgsync"].get(metric) is not None]
        return med(rs)

    def col(sc, tool, metric):
        return med([r.get(metric) for (s, _, t), r in kept.items() if s == sc and t == tool])

    def rss_mb(sc, tool):
        kb = col(sc, tool, "tool_peak_rss_kb")
        return fmt(kb / 1024 if kb else None, 0)

    def valid(sc, tool):
        vs = {r["valid"] for (s, _, t), r in kept.items() if s == sc and t == tool}
        return "n/a" if vs == {"n/a"} else "yes" if vs <= {"ok", "n/a"} else "NO"

    for sc in ("full", "full-d2"):
        if not tools_of(sc):
            continue
        ds = "D1 (pgbench)" if sc == "full" else "D2 (mixed types)"
        r0 = next(r for (s, _, _), r in kept.items() if s == sc)
        L += [f"## {sc}: full copy of {ds}, {r0['data_bytes'] / 1e9:.2f} GB of table data", "",
              "| tool | median s | pgsync/tool (median paired ratio) | tool CPU-s | CPU-s/GB | tool peak RSS MB "
              "| src PG CPU-s | dst PG CPU-s | dst DB MB | dst WAL MB | valid |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for t in tools_of(sc):
            L.append(f"| {t} | {fmt(col(sc, t, 'seconds'))} | {fmt(ratio(sc, t, 'seconds'))} | "
                     f"{fmt(col(sc, t, 'tool_cpu_s'))} | {fmt(col(sc, t, 'tool_cpu_s_per_gb'))} | "
                     f"{rss_mb(sc, t)} | {fmt(col(sc, t, 'src_pg_cpu_s'))} | "
                     f"{fmt(col(sc, t, 'dst_pg_cpu_s'))} | {fmt(col(sc, t, 'dst_db_bytes') / 1e6, 0)} | "
                     f"{fmt(col(sc, t, 'dst_wal_bytes') / 1e6, 0)} | {valid(sc, t)} |")
        L.append("")

    sc = "backlog"
    if tools_of(sc):
        r0 = next(r for (s, _, _), r in kept.items() if s == sc)
        L += [f"## backlog: {r0['rows']:,} one-row transactions written while the consumer is stopped", "",
              "From the consumer's start (pgsync: `apply --exit-when-caught-up` launched; native: `ENABLE`) to the "
              "last row on the target; first row: when the target first shows any. pgsync's no-op apply: the same "
              "command with nothing to apply (its start-up and shut-down cost).", "",
              "| tool | median s | rows/s | first row s | first → last s | pgsync/tool (paired) | no-op apply s "
              "| tool CPU-s | dst PG CPU-s | valid |", "|---|---|---|---|---|---|---|---|---|---|"]
        for t in tools_of(sc):
            s = col(sc, t, "seconds")
            L.append(f"| {t} | {fmt(s)} | {fmt(r0['rows'] / s if s else None, 0)} | "
                     f"{fmt(col(sc, t, 'startup_s'))} | {fmt(col(sc, t, 'drain_s'))} | "
                     f"{fmt(ratio(sc, t, 'seconds'))} | {fmt(col(sc, t, 'noop_apply_s'))} | "
                     f"{fmt(col(sc, t, 'tool_cpu_s'))} | {fmt(col(sc, t, 'dst_pg_cpu_s'))} | {valid(sc, t)} |")
        L.append("")

    sc = "steady"
    if tools_of(sc):
        r0 = next(r for (s, _, _), r in kept.items() if s == sc)
        L += [f"## steady (W1): pgbench -n -c 4 -j 2 -T {r0['load_s']} plus a 20 ms heartbeat", "",
              "staleness = target row-trigger clock − source heartbeat clock (visible: the clock of a deferred "
              "trigger, at the commit of the target transaction); first 3 s of the load skipped", "",
              "| tool | source TPS | TPS pgsync/tool (paired) | p50 ms | p95 ms | p99 ms | max ms | visible p50/p99 ms "
              "| backlog at end (rows / s) | catch-up s | tool CPU-s | src PG CPU-s | dst PG CPU-s | tool RSS MB | valid |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for t in tools_of(sc):
            L.append(f"| {t} | {fmt(col(sc, t, 'tps'), 0)} | {fmt(ratio(sc, t, 'tps'), 3)} | "
                     f"{fmt(col(sc, t, 'p50_ms'), 1)} | {fmt(col(sc, t, 'p95_ms'), 1)} | {fmt(col(sc, t, 'p99_ms'), 1)} | "
                     f"{fmt(col(sc, t, 'max_ms'), 1)} | {fmt(col(sc, t, 'visible_p50_ms'), 1)} / "
                     f"{fmt(col(sc, t, 'visible_p99_ms'), 1)} | {fmt(col(sc, t, 'backlog_rows'), 0)} / "
                     f"{fmt(col(sc, t, 'backlog_s'), 3)} | {fmt(col(sc, t, 'seconds'), 3)} | "
                     f"{fmt(col(sc, t, 'tool_cpu_s'))} | {fmt(col(sc, t, 'src_pg_cpu_s'))} | "
                     f"{fmt(col(sc, t, 'dst_pg_cpu_s'))} | {rss_mb(sc, t)} | {valid(sc, t)} |")
        L.append("")

    sc = "bigtxn"
    if tools_of(sc):
        r0 = next(r for (s, _, _), r in kept.items() if s == sc)
        L += [f"## bigtxn (W3): one {r0['rows']:,}-row INSERT transaction while streaming", "",
              "| tool | COMMIT → applied s | pgsync/tool (paired) | BEGIN → COMMIT s | tool peak RSS MB "
              "| tool CPU-s | dst PG CPU-s | valid |", "|---|---|---|---|---|---|---|---|"]
        for t in tools_of(sc):
            L.append(f"| {t} | {fmt(col(sc, t, 'seconds'))} | {fmt(ratio(sc, t, 'seconds'))} | "
                     f"{fmt(col(sc, t, 'txn_s'))} | {rss_mb(sc, t)} | "
                     f"{fmt(col(sc, t, 'tool_cpu_s'))} | {fmt(col(sc, t, 'dst_pg_cpu_s'))} | {valid(sc, t)} |")
        L.append("")

    L += ["Paired ratio: pgsync's value over the peer's within one repetition, median over repetitions "
          "(seconds: below 1 means pgsync is faster; TPS: above 1 means the source ran faster with pgsync).", "",
          "## Every run (gate, foreign CPU, noisy re-runs)", "",
          "| scenario | rep | tool | attempt | seconds | gate busy % (ok, waited s) | foreign CPU-s "
          "(limit) | noisy | valid |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: r["file_order"]):
        L.append(f"| {r['scenario']} | {r['rep']} | {r['tool']} | {r['attempt']} | {fmt(r.get('seconds'), 3)} | "
                 f"{r['gate_busy_pct']} ({'ok' if r['gate_ok'] else 'NOT QUIET'}, {r['gate_wait_s']}) | "
                 f"{r['foreign_cpu_s']} ({0.05 * r['window_s'] * r['cores']:.2f}) | "
                 f"{'yes' if r['noisy'] else 'no'} | {r['valid']} |")
    noisy_kept = sum(1 for r in kept.values() if r["noisy"])
    L += ["", f"{len(runs)} runs, {len(kept)} kept (the last attempt of each); "
          f"{noisy_kept} kept runs still noisy after the re-runs."]
    text = "\n".join(L) + "\n"
    open(f"{out}/summary.md", "w").write(text)
    print(text)


def cmd_meta(path, *pairs):
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1024 // 1024
    meta = {"machine": f"{CORES} CPUs ({cpu}), {mem} GiB RAM, {platform.platform()}"}
    for kv in pairs:
        k, _, v = kv.partition("=")
        meta[k] = v
    json.dump(meta, open(path, "w"), indent=1)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "snap":
        cmd_snap(*args)
    elif cmd == "gate":
        cmd_gate(*args)
    elif cmd == "wait":
        cmd_wait(args)
    elif cmd == "elapsed":
        cmd_elapsed(*args)
    elif cmd == "lag":
        cmd_lag(args)
    elif cmd == "record":
        cmd_record(args[0], args[1], args[2], args[3:])
    elif cmd == "summary":
        cmd_summary(args[0])
    elif cmd == "meta":
        cmd_meta(*args)
    else:
        sys.exit(f"unknown command {cmd}")
