"""verify — measured evidence for each claim of Li & Li (arXiv 2410.08503) in
the reffeat model: claim checks P1–P4 (SPEC §9) and mechanism claims M1–M3,
phase diagrams against the analytic boundaries, an algorithm-variant table,
and a Markdown report.

    python -m reffeat.verify --out verify   # everything: verify/REPORT.md, results.json, figures/
    python -m reffeat.verify --quick        # CI: the default regime on 5 seeds, coarse grids
    python -m reffeat.verify.p1 --regime q3 # one claim over 20 seeds; exit 1 unless it holds (SPEC V1)

Modules: ``common`` (regimes, pair runs, statistics, parallel map),
``p1``–``p4``, ``m1``–``m3`` (claim checks), ``sweeps`` (phase diagrams,
algorithm variants), ``report`` (Markdown and figures), ``run`` (CLI).
"""

CLAIMS = ("p1", "p2", "p3", "p4", "m1", "m2", "m3")
