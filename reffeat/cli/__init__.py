"""The commands: parse, call the experiments floor (``reffeat.experiments``), print.

    run     python -m reffeat.run            ST vs AT on the SPEC's patch data (and ``run real``)
    real    python -m reffeat.run real        R1–R5 on real images
    data    python -m reffeat.data            fetch / import / locate real image data (R1)
    bench   python -m reffeat.bench           speed and memory of the fast path vs the reference
    common  parser base (every command has --version) and exit-code policy shared by all of them
"""
