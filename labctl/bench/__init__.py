"""labctl bench: the same workloads on the host and on lab machines, compared by virtualization level.

    workloads.py    the commands (sysbench, stress-ng, fio, iperf3, ping) and their parsers
    targets.py      the host and lab machines (through their drivers), levels, idle costs
    runner.py       interleaved rounds, warm-up, iperf3 servers on the host, progress
    results.py      the raw results file, written after every sample
    stats.py        median, bootstrap interval, coefficient of variation, ratios to the host
    fingerprint.py  host, tool and box versions the results depend on
    compare.py      the throw-away comparison lab (one machine per kind from one box)

`labctl report` (labctl.report) turns a results file into report.md and report.html.
"""
