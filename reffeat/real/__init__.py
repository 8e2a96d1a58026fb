"""Real images (SPEC §10): the network N3 unchanged on image patches.

    datasets   R1 loaders (MNIST, Fashion-MNIST, CIFAR-10, SVHN), fetch/import, integrity checks
    patches    R2 images <-> patches (stride t, centring), fold = patchifyᵀ, ImageMap: the one image -> input map
    train      R3 mini-batch ST / AT with checkpoints
    lenses     R4 robust vs non-robust feature lenses (acc vs ε, D_R / D_NR, frequency)
    figures    R5 figures
"""
