"""verify — measured evidence for each claim of Li & Li (arXiv 2410.08503) in
the reffeat model: claim checks P1–P4 (SPEC §9) and mechanism claims M1–M3,
phase diagrams against the analytic boundaries, an algorithm-variant table,
and a Markdown report.

    python -m verify               # everything, writes verify/REPORT.md + figures/verify_*.png
    python -m verify --quick       # CI: few seeds, coarse grids, the 'quick' regime
    python -m reffeat.verify.p1 --seeds 10 # one claim check; exit 1 if it fails on a majority of seeds

Modules: ``common`` (regimes, pair runs, statistics, parallel map),
``p1``–``p4``, ``m1``–``m3`` (claim checks), ``sweeps`` (phase diagrams,
algorithm variants), ``report`` (Markdown and figures), ``run`` (CLI).
"""

CLAIMS = ("p1", "p2", "p3", "p4", "m1", "m2", "m3")
