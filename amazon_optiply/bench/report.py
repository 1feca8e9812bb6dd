"""The plain-text table the bench prints: one block per section, each with the command reproducing it."""

from __future__ import annotations

from amazon_optiply.bench import command


def _row(cells: list, widths: list[int]) -> str:
    return "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def _grid(header: list[str], rows: list[list]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + _row(header, widths), *("  " + _row(r, widths) for r in rows)]


def api_block(api: dict, scale: str) -> list[str]:
    main = api["main"]
    cycles = ("first_sync", "steady_state", "no_change")
    ops = sorted(
        {op for c in cycles for op in main[c]["sp_api_calls"]}
        | set(main["first_sync"]["lower_bound"]) - {"total"}
    )
    rows = []
    for op in ops:
        row = [op]
        for c in cycles:
            bound = main[c]["lower_bound"].get(op)
            row += [main[c]["sp_api_calls"].get(op, 0), "-" if bound is None else bound]
        rows.append(row)
    per_cycle = {
        "ratio: beyond polls / bound": lambda c: (
            f"{c['calls_beyond_polls']}/{c['lower_bound']['total']}",
            c["ratio"],
        ),
        "getReport polls, per report": lambda c: (c["getReport_polls"], c["polls_per_report"]),
        "Optiply writes / changed": lambda c: (c["optiply_writes"], c["data"]["entities_changed"]),
        "Optiply reads (GET)": lambda c: (c["optiply_reads"], "-"),
    }
    for label, cells in per_cycle.items():
        rows.append([label, *(cell for c in cycles for cell in cells(main[c]))])
    header = ["operation", "first", "bound", "steady", "bound", "no-change", "bound"]
    s = main["steady_state"]["data"]
    return [
        f"1. API efficiency per cycle ({api['marketplace']}, {main['skus']} SKUs, {main['fba_rows']} FBA rows; "
        f"steady: {s['changed_fba_rows']} FBA rows changed, {main['new_orders_per_cycle']} new orders/cycle, "
        f"{s['new_asins']} new ASINs)",
        f"   how: {api['how']}",
        *_grid(header, rows),
        f"   reproduce: {command(scale, 'api')}",
    ]


def latency_block(lat: dict, scale: str) -> list[str]:
    bands = ((5, 30), (30, 120), (120, 601))
    rows = []
    for lo, hi in bands:
        picked = [s for s in lat["samples"] if lo <= s["processing_seconds"] < hi]
        if picked:
            worst = max(s["latency_seconds"] for s in picked)
            mean_polls = sum(s["polls"] for s in picked) / len(picked)
            tap = sum(s["tap_latency_seconds"] for s in picked) / len(picked)
            rows.append(
                [f"{lo}-{min(hi, 600)} s", len(picked), f"{worst:.2f}", f"{mean_polls:.1f}", f"{tap:.1f}"]
            )
    return [
        f"2. Report latency, DONE -> document parsed (n={len(lat['samples'])}, processing 5 s..10 min)",
        f"   how: {lat['how']}",
        f"   median {lat['median_seconds']} s, p95 {lat['p95_seconds']} s, max {lat['max_seconds']} s; "
        f"{lat['polls_per_report']} getReport polls/report; max {lat['max_getReport_calls_in_1s']} getReport "
        f"calls in any 1 s; {lat['getReport_throttled']} throttled",
        f"   the 30 s fixed-interval tap on the same samples: median {lat['tap_30s_median_seconds']} s, "
        f"mean {lat['tap_30s_mean_seconds']} s (15 s for uniformly spread processing times)",
        *_grid(["processing", "n", "max latency s", "polls", "tap mean s"], rows),
        f"   reproduce: {command(scale, 'latency')}",
    ]


def projection_block(proj: dict, scale: str) -> list[str]:
    rows = []
    for cycle in ("first_sync", "steady_state"):
        for n, p in proj[cycle].items():
            amazon = sum(v for k, v in p["seconds"].items() if k != "optiply_writes")
            rows.append(
                [
                    f"{cycle} {int(n):,} SKUs",
                    f"{amazon:.0f}",
                    f"{p['seconds']['optiply_writes']:.0f}",
                    f"{p['total_seconds']:.0f}",
                    f"{p['dominant']} ({p['dominant_seconds']:.0f} s)",
                ]
            )
    refresh = ", ".join(f"{int(n):,}: {s:.0f} s" for n, s in proj["catalog_refresh_cycle"].items())
    return [
        f"3. Projected cycle time at Amazon's documented rates, one marketplace (fitted on {proj['measured_at_skus']} SKUs)",
        "   how: calls = a + b*SKUs per operation through the two measured sellers; max(0, calls-burst)/rate, summed;",
        "        Optiply writes at 0.2 s each; report processing time (undocumented) and getReport polls not included",
        *_grid(["cycle", "SP-API s", "Optiply s", "total s", "dominant"], rows),
        f"   catalog refresh cycle (every CATALOG_REFRESH_DAYS all ASINs again, searchCatalogItems alone): {refresh}",
        f"   reproduce: {command(scale, 'api,projection')}",
    ]


def transform_block(t: dict, scale: str) -> list[str]:
    d = t["documents"]
    stages = ", ".join(f"{k} {v}" for k, v in t["stages_seconds"].items())
    return [
        f"4. Transform: {d['listings_rows']:,} listings + {d['fba_rows']:,} FBA rows + {d['identifier_rows']:,} identifiers -> "
        f"{t['payload_rows']:,} payload rows (pandera included; all valid: {all(t['validated'].values())})",
        "   how: sandbox renderers on synthesized frames; measured in a fresh subprocess (see results.json)",
        f"   wall {t['wall_seconds']} s; pyarrow floor {t['floor_seconds']} s; ratio {t['ratio_to_floor']}x; "
        f"peak RSS {t['peak_rss_mb']:.0f} MB (after imports {t['rss_after_imports_mb']:.0f} MB)",
        f"   stages (s): {stages}",
        f"   reproduce: {command(scale, 'transform')}",
    ]


def e2e_block(e: dict, scale: str) -> list[str]:
    b = e["overhead_breakdown_seconds"]
    return [
        f"5. End to end: first sync of {'/'.join(e['marketplaces'])} x {e['skus']:,} SKUs ({e['orders_per_day']} orders/day), "
        f"success {e['success']}",
        "   how: fresh process, sandbox in-process (reports 0.25 s, rates x50, Optiply writes unspaced)",
        f"   wall {e['wall_seconds']} s = work {e['work_seconds']} s (sum of {e['steps']} step durations) + "
        f"Dagster overhead {e['dagster_overhead_seconds']} s ({e['dagster_overhead_share']:.0%})",
        "   overhead: " + ", ".join(f"{k} {v}" for k, v in b.items()),
        "   slowest steps (s): " + ", ".join(f"{k} {v}" for k, v in e["slowest_steps_seconds"].items()),
        f"   reproduce: {command(scale, 'e2e')}",
    ]


def tenants_block(t: dict, scale: str) -> list[str]:
    steady, first = t["cycles"]["steady_state"], t["cycles"]["first_sync"]
    b = t["steady_breakdown_seconds_median"]
    p = t["projection"]
    return [
        f"6. Tenants: {t['tenants']} tenants x {'/'.join(t['marketplaces'])}, {t['skus']} SKUs each, one run process "
        f"per tenant-marketplace, {t['parallel']} at once on {t['cores']} CPUs; success {t['success']}",
        f"   how: one sandbox per tenant ({t['sandboxes']}, in the bench's process, setup "
        f"{t['sandbox_setup_seconds_excluded']} s excluded); "
        "a first sync, 30 minutes on, then the steady-state cycle measured",
        f"   runs: first {first['succeeded']}/{first['runs']} in {first['wall_seconds']} s; "
        f"steady {steady['succeeded']}/{steady['runs']} in {steady['wall_seconds']} s = "
        f"{t['steady_runs_per_minute']} runs/min",
        f"   per steady run (median): wall {t['steady_run_wall_seconds_median']} s = "
        + ", ".join(f"{k} {v}" for k, v in b.items()),
        f"   per steady run: CPU {t['steady_cpu_seconds_per_run']['median']} s (max "
        f"{t['steady_cpu_seconds_per_run']['max']}), peak RSS {t['steady_peak_rss_mb_per_run']['median']} MB "
        f"(max {t['steady_peak_rss_mb_per_run']['max']}); sandboxes' CPU in that cycle "
        f"{t['sandbox_cpu_seconds_steady']} s (not in a run's)",
        f"   1,000 tenant-marketplaces per 30 min ({p['needed_runs_per_minute']} runs/min): "
        f"{p['cores_by_cpu']} cores if CPU-bound, {p['cores_by_throughput']} at this machine's measured throughput; "
        f"Kubernetes, one pod per run: {p['k8s_cores']} cores ({p['k8s_cpu_seconds_per_run']} s per run = CPU + "
        f"pod start like process start + imports + definitions, {t['pod_start_like_seconds']} s; image cached)",
        f"   reproduce: {command(scale, 'tenants')}",
    ]


def writes_block(w: dict, scale: str) -> list[str]:
    lines = [
        f"7. Optiply writes against the sandbox's Optiply limit of {w['limit_per_second']:.0f} writes/s "
        f"({w['latency_seconds'] * 1000:.0f} ms per request, {w['max_concurrent_writes']} in flight)",
        "   how: adaptive rate (AIMD) from 5/s; throughput counted from the first 429; duplicates = remoteIds held twice",
        *_grid(
            [
                "writes",
                "seconds",
                "whole run/s",
                "steady/s",
                "share",
                "429s",
                "Retry-After",
                "decreases",
                "dup",
                "lost",
            ],
            [
                [
                    w["writes"],
                    w["seconds"],
                    w["throughput_per_second"],
                    w["steady_per_second"],
                    f"{w['share_of_limit']:.0%}",
                    w["rate_limited_429"],
                    w["retry_after_pauses"],
                    w["rate_decreases"],
                    w["duplicates"],
                    w["lost"],
                ]
            ],
        ),
    ]
    p = w.get("projection_1m")
    if p:
        lines += [
            f"   1M-SKU steady-state cycle (section 3: {p['optiply_writes']:,} Optiply writes, "
            f"{p['amazon_seconds']:.0f} s of SP-API, dominant {p.get('amazon_dominant')}), "
            "writes at Optiply's rate x the share measured:",
            *_grid(
                ["Optiply writes/s", "Optiply s", "cycle s"],
                [[r, f"{p['optiply_seconds'][r]:.0f}", f"{s:.0f}"] for r, s in p["cycle_seconds"].items()],
            ),
        ]
    return [*lines, f"   reproduce: {command(scale, 'api,projection,writes')}"]


BLOCKS = {
    "api": api_block,
    "latency": latency_block,
    "projection": projection_block,
    "transform": transform_block,
    "e2e": e2e_block,
    "tenants": tenants_block,
    "writes": writes_block,
}


def targets_block(results: dict) -> list[str]:
    lines = ["Targets:"]
    for section in BLOCKS:
        for t in (results.get(section) or {}).get("targets", []):
            verdict = "met   " if t["met"] else f"MISSED by {t['missed_by']}:"
            lines.append(f"  {verdict} {t['name']} (target {t['target']}, measured {t['value']})")
    return lines


def table(results: dict) -> str:
    scale = results["scale"]
    lines = [f"amazon-optiply bench, scale {scale}, {results['generated_at']} ({results['machine']})", ""]
    for section, block in BLOCKS.items():
        if results.get(section):
            lines += [*block(results[section], scale), ""]
    return "\n".join(lines + targets_block(results))
