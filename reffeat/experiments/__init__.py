"""The experiments floor: one function per experiment that turns a Config
into results (and, where asked, files), used alike by the commands, the
sweeps and verify.

    synthetic   run_seed: T1/T3 + E1–E4 for one seed of the SPEC's patch data
                (ST and AT from the same data and W^{(0)}), and the records the
                run command, the sweep table and verify keep of it
    memory      the peak-memory estimates checked before a run allocates
    real        the real-image pipeline R1–R5 (run, in stages)
    real_seeds  run_seeds: N seeds of it and their statistics (stats)
    real_config its per-data-set defaults, option constraints and resolution

Floor rule (STYLE.md): imports only from the core and ``real/``, never from
``jobs``, ``cli`` or ``verify``.
"""
