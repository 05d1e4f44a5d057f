"""Pulse-coupled neural networks (classical PCNN and simplified SPCNN), vectorised over slice stacks.

A volume (Z, Y, X) is treated as Z independent 2D networks that step together: the linking
neighbourhood is the 3x3 in-plane kernel ``W`` and never crosses slices, which is how the
PCNN literature defines it and keeps anisotropic volumes well behaved.

All state starts at zero (U = E = Y = 0), so at n = 1 every neuron with a positive stimulus
fires at once (a global synchronising pulse); after that a neuron fires again when its internal
activity U overtakes its decaying threshold E, brighter neurons (and neurons whose neighbours
fired) first. ``first_fire`` therefore records the first firing *after* that pulse (n >= 2),
which orders the voxels by brightness, smoothed by the linking of their neighbours.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from skimage.filters import threshold_otsu

from ..progress import CancelCallback, check_cancel

# in-plane weights of the 8 neighbours (Chen et al. 2011); centre weight 0
W = np.array([[0.5, 1.0, 0.5], [1.0, 0.0, 1.0], [0.5, 1.0, 0.5]], dtype=np.float32)
W_SUM = float(W.sum())  # 6: the linking input of a neuron whose whole neighbourhood fired


@dataclass(frozen=True)
class PCNNParameters:
    """Classical PCNN (Eckhorn / Johnson): leaky feeding F and linking L, U = F(1 + beta L)."""

    alpha_f: float = 0.1
    alpha_l: float = 1.0
    alpha_e: float = 0.3
    v_f: float = 0.5
    v_l: float = 0.2
    v_e: float = 20.0
    beta: float = 0.1

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class SPCNNParameters:
    """Simplified PCNN (Chen et al. 2011): F = S, L = V_L * (W * Y), U leaks with alpha_f."""

    alpha_f: float
    beta: float
    v_e: float
    alpha_e: float
    v_l: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_image(cls, stimulus: np.ndarray, mask: np.ndarray | None = None) -> SPCNNParameters:
        """Automatic parameters from a stimulus normalised to [0, 1] (Chen et al. 2011, IEEE TNN 22(6)).

        alpha_f = ln(1/sigma)  (sigma: std of the stimulus), beta = (Smax/S' - 1)/6 with S' the Otsu
        threshold, V_E = e^-af + 1 + 6 beta, and alpha_e such that a neuron of intensity S' first
        re-fires at n = 3: following U from zero, U_S'[3] = S'(1 + e^-af + e^-2af) + 6 beta S' e^-af
        (the last term is the linking the whole neighbourhood gave at n = 2, decayed once), hence
        alpha_e = ln(V_E / (S'(1 - e^-3af)/(1 - e^-af) + 6 beta S' e^-af)). V_E is chosen so that
        the brightest neuron (S = Smax, U[2] = Smax(e^-af + 1 + 6 beta)) cannot fire at n = 2.
        """
        values = np.asarray(stimulus if mask is None else stimulus[mask], dtype=np.float64).ravel()
        if values.size < 2 or values.max() <= values.min():
            raise ValueError("the stimulus is constant: PCNN parameters are undefined")
        sigma = float(values.std())
        s_max = float(values.max())
        s_otsu = float(threshold_otsu(values))
        alpha_f = float(np.log(1.0 / sigma))
        beta = (s_max / s_otsu - 1.0) / W_SUM
        decay = np.exp(-alpha_f)
        v_e = decay + 1.0 + W_SUM * beta
        u3 = s_otsu * (1.0 - np.exp(-3.0 * alpha_f)) / (1.0 - decay) + W_SUM * beta * s_otsu * decay
        alpha_e = float(np.log(v_e / u3))
        return cls(alpha_f=alpha_f, beta=float(beta), v_e=float(v_e), alpha_e=alpha_e)


@dataclass
class PCNNResult:
    """first_fire: int16, iteration of the first firing after the n = 1 pulse (0 = never);
    signature: G[n] = number of neurons firing at iteration n (index 0 is n = 1);
    pulses: every Y[n] (bool, iteration first) when asked for, so any window's signature
    can be read off one run."""

    first_fire: np.ndarray
    signature: np.ndarray
    pulses: np.ndarray | None = None


def linking_input(y: np.ndarray, out: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """Twice ``W`` correlated with each slice of the uint8 pulses ``y`` (zero outside).

    Integer weights 2 (edge) and 1 (diagonal) keep the eight shifted adds in uint8 (at most 12),
    a quarter of the memory traffic of float32; callers scale by 1/2.
    """
    pad[:, 1:-1, 1:-1] = y
    np.add(pad[:, :-2, 1:-1], pad[:, 2:, 1:-1], out=out)
    out += pad[:, 1:-1, :-2]
    out += pad[:, 1:-1, 2:]
    out += out
    out += pad[:, :-2, :-2]
    out += pad[:, :-2, 2:]
    out += pad[:, 2:, :-2]
    out += pad[:, 2:, 2:]
    return out


def _as_stack(stimulus: np.ndarray) -> np.ndarray:
    s = np.asarray(stimulus, dtype=np.float32)
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3:
        raise ValueError(f"PCNN input must be 2D or a 3D stack of slices, got shape {s.shape}")
    return s


def _run(s: np.ndarray, step, iterations: int, cancel: CancelCallback | None, stop_after_wave: int | None,
         keep_pulses: bool = False) -> PCNNResult:
    """Shared loop: ``step(linking) -> fired`` (linking = 2 x W*Y); collects first firing and the signature.

    ``stop_after_wave`` = k ends the run after the first iteration n >= 2 in which at least k
    neurons fired (the signature is then shorter than ``iterations``): segmentation only needs
    that first wave.
    """
    first = np.zeros(s.shape, dtype=np.int16)
    signature = np.zeros(iterations, dtype=np.int64)
    y = np.zeros(s.shape, dtype=np.uint8)
    link = np.empty_like(y)
    pad = np.zeros((s.shape[0], s.shape[1] + 2, s.shape[2] + 2), dtype=np.uint8)
    pulses = np.zeros((iterations,) + s.shape, dtype=bool) if keep_pulses else None
    for n in range(1, iterations + 1):
        check_cancel(cancel)
        linking_input(y, link, pad)
        fired = step(link)
        signature[n - 1] = int(np.count_nonzero(fired))
        if pulses is not None:
            pulses[n - 1] = fired
        if n >= 2:
            first[fired & (first == 0)] = n
        y = fired.view(np.uint8)
        if stop_after_wave is not None and n >= 2 and signature[n - 1] >= max(stop_after_wave, 1):
            return PCNNResult(first, signature[:n], None if pulses is None else pulses[:n])
    return PCNNResult(first, signature, pulses)


def run_spcnn(stimulus: np.ndarray, params: SPCNNParameters, iterations: int = 12,
              cancel: CancelCallback | None = None, stop_after_wave: int | None = None, keep_pulses: bool = False) -> PCNNResult:
    """Simplified PCNN: U[n] = e^-af U[n-1] + S (1 + beta V_L (W*Y[n-1])), Y[n] = U[n] > E[n-1],
    E[n] = e^-ae E[n-1] + V_E Y[n]. ``stimulus`` is a 2D image or a (Z, Y, X) stack in [0, 1]."""
    s = _as_stack(stimulus)
    u = np.zeros_like(s)
    e = np.zeros_like(s)
    decay_u, decay_e = np.float32(np.exp(-params.alpha_f)), np.float32(np.exp(-params.alpha_e))
    gain = np.float32(0.5 * params.beta * params.v_l)  # linking arrives doubled
    v_e = np.float32(params.v_e)

    def step(link: np.ndarray) -> np.ndarray:
        u[...] = decay_u * u + s * (1.0 + gain * link)
        fired = u > e
        e[...] = decay_e * e + v_e * fired
        return fired

    return _run(s, step, iterations, cancel, stop_after_wave, keep_pulses)


def run_pcnn(stimulus: np.ndarray, params: PCNNParameters = PCNNParameters(), iterations: int = 12,
             cancel: CancelCallback | None = None, stop_after_wave: int | None = None, keep_pulses: bool = False) -> PCNNResult:
    """Classical PCNN: F[n] = e^-aF F[n-1] + V_F (W*Y) + S, L[n] = e^-aL L[n-1] + V_L (W*Y),
    U = F (1 + beta L), Y[n] = U[n] > E[n-1], E[n] = e^-aE E[n-1] + V_E Y[n]."""
    s = _as_stack(stimulus)
    f = np.zeros_like(s)
    lk = np.zeros_like(s)
    e = np.zeros_like(s)
    df, dl, de = (np.float32(np.exp(-a)) for a in (params.alpha_f, params.alpha_l, params.alpha_e))

    def step(link: np.ndarray) -> np.ndarray:
        f[...] = df * f + np.float32(0.5 * params.v_f) * link + s
        lk[...] = dl * lk + np.float32(0.5 * params.v_l) * link
        fired = f * (1.0 + np.float32(params.beta) * lk) > e
        e[...] = de * e + np.float32(params.v_e) * fired
        return fired

    return _run(s, step, iterations, cancel, stop_after_wave, keep_pulses)
