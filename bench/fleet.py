"""A fleet's reasoning on one shared server against each robot reasoning locally, side by side in one run.

    python bench/fleet.py --endpoint URL [--clients 1,2,4,8] [--goals 8] [--api-model NAME] [--json] [--out FILE]

For each client count N, N client processes (robots) send goals at once: first each to the server at ``--endpoint``
(``reasoner.backend: openai``), then each through its own local reasoner (the tiny preset's, with this machine's
cores divided between the N processes, as N robots' compute would be divided here). Each client answers
``--goals`` goals (the tiny model's fitted goal on the demo scene) one after another, the next sent when the
previous is answered, as a node does. Timed: the reasoning of each goal (what the server replaces; SAM2 runs on
the robot either way), from the moment all N clients are loaded. The server must serve the tiny reasoner:
``segzero serve --tiny``.

The JSON is one object: ``clients``, ``local_goals_per_s``, ``server_goals_per_s``, ``ratio`` (server / local),
``local_p50_ms``, ``server_p50_ms`` (lists, one entry per client count), ``goals_per_client``, ``errors`` (goals
answered with an error, by mode), ``endpoint``, ``api_model``, ``cpu_count``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segzero_ros"))


def served_models(endpoint: str) -> list[str]:
    """The model names the server lists (``GET /models``)."""
    with urllib.request.urlopen(endpoint.rstrip("/") + "/models", timeout=10) as response:
        return [entry["id"] for entry in json.load(response)["data"]]


def reasoner_values(mode: str, endpoint: str, api_model: str) -> dict:
    """The tiny preset's reasoner parameters, local or through the server."""
    from segzero_ros import build

    values = build.resolve({}, "tiny")
    if mode == "server":
        values.update({"reasoner.backend": "openai", "reasoner.endpoint": endpoint, "reasoner.api_model": api_model})
    return values


def client(mode: str, endpoint: str, api_model: str, goals: int, threads: int, barrier, results) -> None:
    """One robot: load its reasoner, wait for the others, reason ``goals`` times; put (starts, ends, errors)."""
    import torch

    from segzero_ros import build
    from segzero_ros.scenes import demo_scene
    from segzero_ros.tiny import FIT_GOAL

    torch.set_num_threads(threads)
    reasoner = build.build_reasoner(reasoner_values(mode, endpoint, api_model))
    rgb = demo_scene(640, 480)[0]
    reasoner.reason(rgb, FIT_GOAL)  # warm-up: the first call pays one-time costs in both modes
    barrier.wait()
    starts, ends, errors = [], [], []
    for _ in range(goals):
        starts.append(time.monotonic())
        reasoning = reasoner.reason(rgb, FIT_GOAL)
        ends.append(time.monotonic())
        if not reasoning.ok:
            errors.append(reasoning.error)
    reasoner.close()
    results.put((starts, ends, errors))


def run_clients(mode: str, clients: int, goals: int, endpoint: str, api_model: str) -> dict:
    """``clients`` processes at once in ``mode``; goals/s over the whole run, median latency, errors."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(clients), context.Queue()
    threads = max(1, (os.cpu_count() or 1) // clients) if mode == "local" else 1
    processes = [
        context.Process(target=client, args=(mode, endpoint, api_model, goals, threads, barrier, results))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    done = [results.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join(60)
    first = min(s for starts, _, _ in done for s in starts)
    last = max(e for _, ends, _ in done for e in ends)
    latencies = [(e - s) * 1e3 for starts, ends, _ in done for s, e in zip(starts, ends, strict=True)]
    errors = [error for _, _, errs in done for error in errs]
    return {
        "goals_per_s": clients * goals / (last - first),
        "p50_ms": statistics.median(latencies),
        "errors": errors,
    }


def run(endpoint: str, client_counts: list[int], goals: int, api_model: str = "") -> dict:
    """Both modes for every client count; the report's dictionary."""
    api_model = api_model or served_models(endpoint)[0]
    report: dict = {
        "clients": client_counts,
        "goals_per_client": goals,
        "endpoint": endpoint,
        "api_model": api_model,
        "cpu_count": os.cpu_count(),
        "errors": {"local": [], "server": []},
    }
    for key in ("local_goals_per_s", "server_goals_per_s", "ratio", "local_p50_ms", "server_p50_ms"):
        report[key] = []
    for n in client_counts:
        measured = {mode: run_clients(mode, n, goals, endpoint, api_model) for mode in ("server", "local")}
        for mode, m in measured.items():
            report[f"{mode}_goals_per_s"].append(round(m["goals_per_s"], 3))
            report[f"{mode}_p50_ms"].append(round(m["p50_ms"], 1))
            report["errors"][mode].extend(m["errors"])
        report["ratio"].append(round(measured["server"]["goals_per_s"] / measured["local"]["goals_per_s"], 3))
    return report


def table(report: dict) -> str:
    lines = [
        f"fleet: {report['goals_per_client']} goals per client, server {report['endpoint']} "
        f"(model '{report['api_model']}'), {report['cpu_count']} CPUs here"
    ]
    lines.append(
        f"{'clients':>8} {'local goals/s':>14} {'server goals/s':>15} {'ratio':>7} "
        f"{'local p50 ms':>13} {'server p50 ms':>14}"
    )
    for i, n in enumerate(report["clients"]):
        lines.append(
            f"{n:>8} {report['local_goals_per_s'][i]:>14.2f} {report['server_goals_per_s'][i]:>15.2f} "
            f"{report['ratio'][i]:>7.2f} {report['local_p50_ms'][i]:>13.0f} {report['server_p50_ms'][i]:>14.0f}"
        )
    for mode, errors in report["errors"].items():
        if errors:
            lines.append(f"{mode}: {len(errors)} goals failed, e.g. {errors[0]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--clients", default="1,2,4,8", help="client counts, comma-separated")
    parser.add_argument("--goals", type=int, default=8, help="goals each client sends, one after another")
    parser.add_argument("--api-model", default="", help="the served model's name (default: the first one listed)")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument("--out", type=Path, help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.clients.split(",") if n.strip()]
    if not counts or min(counts) < 1 or args.goals < 1:
        parser.error("--clients needs positive counts and --goals a positive number")
    try:
        report = run(args.endpoint, counts, args.goals, args.api_model)
    except OSError as exc:
        print(
            f"fleet: the server at {args.endpoint} does not answer ({exc}); start one: segzero serve --tiny",
            file=sys.stderr,
        )
        return 2
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else table(report))
    failed = report["errors"]["local"] or report["errors"]["server"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
