"""R2: an H×W×C image cut into p×p patches with stride t, its adjoint, and
the one image → network input map of the real-image pipeline.

    R2  p×p patches with stride t (default t = p, non-overlapping), row-major
        over the ((H−p)/t + 1) × ((W−p)/t + 1) grid; each patch is flattened
        in (row, column, channel) order: P = ((H−p)/t + 1)((W−p)/t + 1),
        d = p²C. The network N3 is used unchanged.
        Option: subtract the training set's per-pixel mean μ (H, W, C) first,
            to_input(x) = patchify(x − μ, p, t);
        the ℓ∞/ℓ2 ball is unchanged and the pixel box [0, 1] moves with the
        shift (it is [−μ, 1 − μ] in centred coordinates).
    fold = patchifyᵀ: the sum of the patch arrays back onto the image. For a
        loss ℓ of the network input, ∇_x ℓ(to_input(x)) = fold(∇_X ℓ) (the
        shift μ does not change the gradient), so T2/E2c/G3 in patch space give
        the attacks on the image: ⟨patchify(x), G⟩ = ⟨x, fold(G)⟩.

>>> import numpy as np
>>> imgs = np.arange(2 * 4 * 4 * 1, dtype=float).reshape(2, 4, 4, 1)
>>> X = patchify(imgs, 2)
>>> X.shape
(2, 4, 4)
>>> bool(np.array_equal(unpatchify(X, 4, 4, 1, 2), imgs))
True
>>> patchify(imgs, 2, stride=1).shape                 # 3×3 overlapping patches
(2, 9, 4)
>>> fold(np.ones((1, 9, 4)), 4, 4, 1, 2, stride=1)[0, :, :, 0]   # how many patches hold a pixel
array([[1., 2., 2., 1.],
       [2., 4., 4., 2.],
       [2., 4., 4., 2.],
       [1., 2., 2., 1.]])
"""

from __future__ import annotations

import math

import numpy as np


def _check_patch(H: int, W: int, p) -> None:
    if not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"patch size p must be a positive integer (got {p!r})")
    if H % p or W % p:
        raise ValueError(f"patch size p must divide the image height and width "
                         f"(p={p}, H={H}, W={W}; allowed: common divisors of {H} and {W})")


def _check_size(H: int, W: int, p) -> None:
    if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or p < 1:
        raise ValueError(f"patch size p must be a positive integer (got {p!r})")
    if p > min(H, W):
        raise ValueError(f"patch size p must be at most the image side (p={p}, H={H}, W={W})")


def allowed_strides(H: int, W: int, p: int) -> list[int]:
    """R2: the strides t with (H−p)/t and (W−p)/t integers and 1 ≤ t ≤ p (so
    every pixel lies in some patch); for p = H = W (one patch) only t = p."""
    g = math.gcd(H - p, W - p)
    if g == 0:
        return [p]
    return [t for t in range(1, p + 1) if g % t == 0]


def _strides_text(H, W, p) -> str:
    ts = allowed_strides(H, W, p)
    if len(ts) == p and p > 3:
        return f"any integer 1..{p}"
    return ", ".join(map(str, ts))


def check_stride(H: int, W: int, p: int, stride, name: str = "stride") -> int:
    """R2: the stride t (None: t = p) if it is allowed for an H×W image and p×p
    patches, else ValueError naming ``name`` and the allowed values."""
    if stride is None:
        return int(p)
    if not isinstance(stride, (int, np.integer)) or isinstance(stride, bool) or stride < 1 \
            or stride not in allowed_strides(H, W, p):
        raise ValueError(f"{name} must make (H-p)/{name} and (W-p)/{name} integers with 1 <= {name} <= p "
                         f"(H={H}, W={W}, p={p}: allowed {_strides_text(H, W, p)}; got {stride!r})")
    return int(stride)


def grid(H: int, W: int, p: int, stride=None) -> tuple[int, int]:
    """R2: the patch grid (gh, gw) = ((H−p)/t + 1, (W−p)/t + 1); P = gh·gw."""
    t = check_stride(H, W, p, stride)
    return (H - p) // t + 1, (W - p) // t + 1


def _shape4(images, what="images"):
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"{what} must have shape (N, H, W, C) (got shape {images.shape})")
    return images


def patchify(images: np.ndarray, p: int, stride: int | None = None) -> np.ndarray:
    """R2: images (N, H, W, C) -> patches (N, P, d), P = ((H−p)/t+1)((W−p)/t+1), d = p²C.

    stride t defaults to p (non-overlapping: P = (H/p)(W/p), a permutation of
    the pixels; then p must divide H and W)."""
    images = _shape4(images)
    N, H, W, C = images.shape
    _check_size(H, W, p)
    t = check_stride(H, W, p, stride)
    if t == p:
        _check_patch(H, W, p)
        gh, gw = H // p, W // p
        x = images.reshape(N, gh, p, gw, p, C).transpose(0, 1, 3, 2, 4, 5)
        return np.ascontiguousarray(x.reshape(N, gh * gw, p * p * C))
    gh, gw = (H - p) // t + 1, (W - p) // t + 1
    win = np.lib.stride_tricks.sliding_window_view(images, (p, p), axis=(1, 2))  # (N, H-p+1, W-p+1, C, p, p)
    x = win[:, ::t, ::t].transpose(0, 1, 2, 4, 5, 3)                            # (N, gh, gw, p, p, C)
    return np.ascontiguousarray(x.reshape(N, gh * gw, p * p * C))


def fold(G: np.ndarray, H: int, W: int, C: int, p: int, stride: int | None = None) -> np.ndarray:
    """R2 adjoint: patch arrays G (N, P, d) -> images (N, H, W, C), each patch
    added back where ``patchify`` took it from (overlaps summed): the exact
    transpose of patchify, ⟨patchify(x), G⟩ = ⟨x, fold(G)⟩. For t = p it is
    ``unpatchify`` (a permutation)."""
    G = np.asarray(G)
    t = check_stride(H, W, p, stride)
    if t == p:
        return unpatchify(G, H, W, C, p)
    gh, gw = (H - p) // t + 1, (W - p) // t + 1
    if G.ndim != 3 or G.shape[1] != gh * gw or G.shape[2] != p * p * C:
        raise ValueError(f"patches must have shape (N, {gh * gw}, {p * p * C}) for "
                         f"H={H}, W={W}, C={C}, p={p}, stride={t} (got {G.shape})")
    N = G.shape[0]
    G6 = G.reshape(N, gh, gw, p, p, C)
    out = np.zeros((N, H, W, C), dtype=np.result_type(G.dtype, np.float32))
    if gh * gw <= p * p:                 # loop over whichever is shorter: grid cells ...
        for a in range(gh):
            for b in range(gw):
                out[:, a * t:a * t + p, b * t:b * t + p] += G6[:, a, b]
    else:                                # ... or offsets inside a patch
        for u in range(p):
            for v in range(p):
                out[:, u:u + t * (gh - 1) + 1:t, v:v + t * (gw - 1) + 1:t] += G6[:, :, :, u, v]
    return out


def unpatchify(X: np.ndarray, H: int, W: int, C: int, p: int) -> np.ndarray:
    """R2 inverse for t = p: patches (N, P, d) -> images (N, H, W, C) (a permutation)."""
    X = np.asarray(X)
    _check_patch(H, W, p)
    gh, gw = H // p, W // p
    if X.ndim != 3 or X.shape[1] != gh * gw or X.shape[2] != p * p * C:
        raise ValueError(f"patches must have shape (N, {gh * gw}, {p * p * C}) for "
                         f"H={H}, W={W}, C={C}, p={p} (got {X.shape})")
    N = X.shape[0]
    x = X.reshape(N, gh, gw, p, p, C).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(x.reshape(N, H, W, C))


def filters_as_images(Wt: np.ndarray, p: int, C: int) -> np.ndarray:
    """R5: filters w_{j,r} (k, m, d) as p×p×C image patches (k, m, p, p, C)
    (whatever the stride: a filter is one patch)."""
    k, m, d = Wt.shape
    if d != p * p * C:
        raise ValueError(f"filter dimension d={d} is not p²C = {p * p * C}")
    return Wt.reshape(k, m, p, p, C)


# ------------------------------------------------------------ the one image → input map

class ImageMap:
    """R2: the one "image → network input" map of the real-image pipeline,
        to_input(x) = patchify(x − μ, p, t),   x ∈ [0, 1]^{H×W×C},
    and the adjoint that carries input gradients back to the image,
        ∇_x ℓ = fold(∇_X ℓ)   (G3 in patch space, then fold; μ is a shift).

    Attack space: threats (the ℓ∞/ℓ2 ball, the pixel box [0, 1]) live on the
    image. The pipeline holds its data in the map's *space* (``space``):
      * ``permutation`` (t = p, no centring): patchify is a permutation of the
        pixels, so the ball and the box are the same in patch space; the
        pipeline holds patches (n, P, d), ``inputs`` is the identity and the
        attacks run on the patches with the fused kernels — exactly the code
        path of the map-less pipeline;
      * otherwise the pipeline holds images (n, H, W, C) in [0, 1]; ``inputs``
        is to_input, and attacks given the map (``attack``/``apgd``/the
        lenses' ``view=``) step on the image with ``attacks.loss_and_grad_through``.

    The map is an ``attacks.InputMap`` (``permutation``, ``shape``, ``inputs``,
    ``fold_like``): the interface the core defines and calls; the core imports
    nothing from here.

    Arrays in the space may be passed flattened to (n, 1, H·W·C) (what the
    attacks use internally): ``inputs`` and ``fold_like`` accept any array
    whose per-sample size is H·W·C.

    ``mean`` μ (H, W, C) is the per-pixel mean of the *training* images
    (``ImageMap.from_training``); it is kept with the checkpoint and the run's
    outputs so that evaluation uses the same μ.
    """

    def __init__(self, shape, p: int, stride: int | None = None, mean=None):
        H, W, C = (int(s) for s in shape)
        _check_size(H, W, p)
        self.shape = (H, W, C)
        self.p = int(p)
        self.stride = check_stride(H, W, p, stride)
        if self.stride == self.p:
            _check_patch(H, W, p)
        if mean is not None:
            mean = np.array(mean, dtype=np.float64)
            if mean.shape != self.shape or not np.all(np.isfinite(mean)):
                raise ValueError(f"mean must be a finite array of shape {self.shape} (got {mean.shape})")
            mean.setflags(write=False)
        self.mean = mean
        self.grid = ((H - p) // self.stride + 1, (W - p) // self.stride + 1)

    @classmethod
    def from_training(cls, images, p: int, stride=None, center: bool = False) -> ImageMap:
        """The map of a run: μ = the per-pixel mean of the training ``images``
        (N, H, W, C) if ``center``, computed in float64."""
        images = _shape4(images)
        mean = images.mean(axis=0, dtype=np.float64) if center else None
        return cls(images.shape[1:], p, stride, mean)

    # ---- what the map is
    @property
    def P(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def d(self) -> int:
        return self.p * self.p * self.shape[2]

    @property
    def permutation(self) -> bool:
        """t = p and no centring: patch space is a permutation of image space."""
        return self.stride == self.p and self.mean is None

    def to_dict(self) -> dict:
        """What a results.json records (μ itself is stored as an array beside it)."""
        return {"p": self.p, "stride": self.stride, "center": self.mean is not None,
                "P": self.P, "d": self.d, "image_shape": list(self.shape),
                "attack_space": "patches (a permutation of the pixels)" if self.permutation
                else "image (gradients folded back from the patches)"}

    def fingerprint(self) -> bytes:
        """Bytes identifying the map (p, t, μ) for checkpoint fingerprints."""
        head = repr((self.shape, self.p, self.stride, self.mean is not None)).encode()
        return head + (b"" if self.mean is None else np.ascontiguousarray(self.mean).tobytes())

    # ---- between images, the space and network inputs
    def _images(self, A) -> np.ndarray:
        A = np.asarray(A)
        return A.reshape((A.shape[0],) + self.shape)

    def space(self, images) -> np.ndarray:
        """Images (N, H, W, C) -> the arrays the pipeline holds (patches if
        ``permutation``, else the images themselves)."""
        images = _shape4(images)
        if images.shape[1:] != self.shape:
            raise ValueError(f"images must have shape (N, {', '.join(map(str, self.shape))}) "
                             f"(got {images.shape})")
        return patchify(images, self.p) if self.permutation else images

    def inputs(self, A) -> np.ndarray:
        """R2: arrays of the space -> network inputs X (n, P, d) = patchify(x − μ, p, t)."""
        if self.permutation:
            return A
        x = self._images(A)
        if self.mean is not None:
            x = x - self.mean.astype(x.dtype, copy=False)
        return patchify(x, self.p, self.stride)

    def to_input(self, images) -> np.ndarray:
        """R2: images (N, H, W, C) -> network inputs, whatever the space."""
        return self.inputs(self.space(images))

    def images(self, A) -> np.ndarray:
        """Arrays of the space -> images (N, H, W, C) (for figures)."""
        if self.permutation:
            return unpatchify(A, *self.shape, self.p)
        return self._images(A)

    def fold_like(self, G, A) -> np.ndarray:
        """∇ w.r.t. network inputs G (n, P, d) -> ∇ w.r.t. the space, shaped like A."""
        if self.permutation:
            return G
        H, W, C = self.shape
        return fold(G, H, W, C, self.p, self.stride).reshape(np.shape(A))

    def pixels(self, A) -> np.ndarray:
        """The pixels after centring, flattened (n, H·W·C) (the linear baseline's
        input; for ``permutation`` the patches flattened — the same pixels
        permuted, as before the map existed)."""
        A = np.asarray(A)
        if self.permutation:
            return A.reshape(A.shape[0], -1)
        x = self._images(A)
        if self.mean is not None:
            x = x - self.mean.astype(x.dtype, copy=False)
        return x.reshape(x.shape[0], -1)

    def pixel_box(self, box=(0.0, 1.0)):
        """The pixel box in the coordinates of ``pixels``: (lo, hi) scalars, or
        (lo − μ, hi − μ) flattened with centring."""
        if self.mean is None:
            return box
        m = self.mean.reshape(-1)
        return box[0] - m, box[1] - m


def through(view) -> ImageMap | None:
    """The map if attacks must go through it (not a permutation), else None."""
    return None if view is None or view.permutation else view
