"""verify — measured evidence for each claim of Li & Li (arXiv 2410.08503) in
the reffeat model: claim checks P1–P4 (SPEC §9) and mechanism claims M1–M3,
phase diagrams against the analytic boundaries, an algorithm-variant table,
and a Markdown report.

    python -m reffeat.verify --out verify   # everything: verify/REPORT.md, results.json, figures/
    python -m reffeat.verify --quick        # CI: the default regime on 5 seeds, coarse grids
    python -m reffeat.verify.p1 --regime q3 # one claim over 20 seeds; exit 1 unless it holds (SPEC V1)

Modules: ``common`` (regimes, pair runs over ``experiments.synthetic``,
statistics, the table-driven claim checks, parallel map), ``p1``–``p4``
(claims declared as tables of quantities), ``m1``–``m3`` (mechanism
analyses), ``invariants``, ``scaling`` (trace sections), ``sweeps`` (phase
diagrams, algorithm variants), ``report`` (tables and figures), ``text``
(REPORT.md prose), ``run`` (CLI).
"""

CLAIMS = ("p1", "p2", "p3", "p4", "m1", "m2", "m3")
