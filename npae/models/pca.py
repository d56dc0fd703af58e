"""PCA by the SVD, and the principal angles that compare a linear autoencoder's subspace with it.

A linear autoencoder trained with squared error learns the top-k principal subspace, but not the
principal axes themselves: any invertible mix ``W_dec → A W_dec``, ``W_enc → W_enc A⁻¹`` of the
code gives the same reconstructions. So the comparison is between *subspaces*, by principal angles,
never between weight vectors.

Derivation: docs/derivations/pca.md
"""
import numpy as np

from npae.models.sklearn_protocol import ParamsMixin
from npae.validation import InputError, NotFittedError, check_array, check_bool, check_choice, check_scalar


class PCA(ParamsMixin):
    """Principal component analysis by the thin SVD of the centred data.

    ``X − mean = U S Vᵀ`` [PCA-1]; the principal axes are the rows of ``Vᵀ`` (``components_``,
    shape (k, D), the scikit-learn convention), the variances along them are ``S² / (N − 1)``
    [PCA-2]. The sign of each axis is fixed so that its largest-magnitude entry is positive
    (the SVD leaves it free).

    Parameters
    ----------
    n_components : int, float in (0, 1), or None
        Number of axes kept; a float keeps the fewest axes whose explained variance reaches that
        fraction of the total; None keeps all, ``min(N, D)``.
    whiten : bool
        ``transform`` divides each coordinate by the square root of its variance (unit variance
        codes); ``inverse_transform`` multiplies it back.

    Attributes (after ``fit``)
    --------------------------
    mean_ : (D,) array
    components_ : (k, D) array, orthonormal rows
    n_components_ : int, k
    explained_variance_ : (k,) array, decreasing
    explained_variance_ratio_ : (k,) array, the share of the total variance
    singular_values_ : (k,) array
    noise_variance_ : float, the mean variance of the discarded directions (probabilistic PCA's
        σ², Tipping & Bishop 1999; 0 when nothing is discarded)
    n_features_in_, n_samples_ : int
    """

    def __init__(self, n_components=None, *, whiten=False):
        self.n_components = n_components
        self.whiten = whiten

    def _check_n_components(self, N, D):
        k = self.n_components
        if k is None:
            return min(N, D)
        if isinstance(k, (float, np.floating)):  # a fraction of the variance, resolved at fit
            check_scalar("n_components", k, low=0.0, high=1.0, low_open=True, high_open=True)
            return float(k)
        check_scalar("n_components", k, low=1, integer=True)
        if k > min(N, D):
            raise InputError(f"n_components={k} exceeds min(n_samples, n_features)={min(N, D)}")
        return int(k)

    def fit(self, X, y=None):
        """Fit the axes to ``X`` (N, D); ``y`` is ignored. Returns ``self``."""
        check_bool("whiten", self.whiten)
        X = check_array(X, "X", dtype=np.float64)
        N, D = X.shape
        if N < 2:
            raise InputError(f"PCA needs at least 2 samples (n_samples={N} given)")
        k = self._check_n_components(N, D)
        self.mean_ = X.mean(axis=0)  # (D,)
        Xc = X - self.mean_  # (N, D)
        _, S, Vt = np.linalg.svd(Xc, full_matrices=False)  # (r,), (r, D) [PCA-1]
        rows = np.arange(Vt.shape[0])
        signs = np.sign(Vt[rows, np.argmax(np.abs(Vt), axis=1)])  # (r,)
        signs[signs == 0] = 1.0
        Vt = Vt * signs[:, None]
        variance = S * S / (N - 1)  # (r,) [PCA-2]
        total = float(np.sum(Xc * Xc)) / (N - 1)
        ratio = variance / total if total > 0 else np.zeros_like(variance)  # [PCA-3]
        if isinstance(k, float):  # the fewest axes reaching the fraction k of the variance
            k = int(np.searchsorted(np.cumsum(ratio), k - 1e-12) + 1)
            k = min(k, variance.size)
        self.n_components_ = k
        self.components_ = Vt[:k].copy()  # (k, D)
        self.singular_values_ = S[:k].copy()
        self.explained_variance_ = variance[:k].copy()
        self.explained_variance_ratio_ = ratio[:k].copy()
        rest = min(N, D) - k
        self.noise_variance_ = float(np.sum(variance[k:]) / rest) if rest > 0 else 0.0
        self.n_features_in_, self.n_samples_ = D, N
        return self

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise NotFittedError("this PCA is not fitted yet; call fit(X) first")

    def __sklearn_is_fitted__(self):
        return hasattr(self, "components_")

    def _scale(self):
        """Per-axis scale of whitened coordinates: sqrt of the explained variance (1 otherwise)."""
        if not self.whiten:
            return np.ones(self.n_components_)
        return np.sqrt(np.maximum(self.explained_variance_, np.finfo(np.float64).tiny))

    def transform(self, X):
        """Coordinates along the axes: ``Z = (X − mean) Vₖ`` [PCA-4], shape (N, k); divided by
        sqrt(explained_variance_) when ``whiten``."""
        self._check_fitted()
        X = check_array(X, "X", n_features=self.n_features_in_, dtype=np.float64, owner="PCA")
        return ((X - self.mean_) @ self.components_.T) / self._scale()  # (N, k) [PCA-4]

    def inverse_transform(self, Z):
        """Back to data space: ``X̂ = Z Vₖᵀ + mean`` [PCA-5], shape (N, D) (whitened codes are
        scaled back first)."""
        self._check_fitted()
        Z = check_array(Z, "Z", n_features=self.components_.shape[0], dtype=np.float64, owner="PCA")
        return (Z * self._scale()) @ self.components_ + self.mean_  # (N, D) [PCA-5]

    def fit_transform(self, X, y=None):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def reconstruction_error(self, X):
        """Per-example squared error ``||x − x̂||²`` of the rank-k reconstruction, shape (N,)."""
        X = check_array(X, "X", n_features=self.n_features_in_, dtype=np.float64, owner="PCA")
        diff = self.inverse_transform(self.transform(X)) - X  # (N, D)
        return np.sum(diff * diff, axis=1)

    def score_samples(self, X):
        """Log-likelihood of each row under probabilistic PCA (Tipping & Bishop 1999): x ~ N(mean,
        Vₖ diag(λ − σ²) Vₖᵀ + σ² I) with λ = explained_variance_, σ² = noise_variance_. (N,)."""
        self._check_fitted()
        X = check_array(X, "X", n_features=self.n_features_in_, dtype=np.float64, owner="PCA")
        D = self.n_features_in_
        sigma2 = max(self.noise_variance_, 1e-12 * max(float(self.explained_variance_.max()), 1.0))
        lam = np.maximum(self.explained_variance_, sigma2)
        Xc = X - self.mean_
        proj = Xc @ self.components_.T  # (N, k)
        # C⁻¹ = (I − Vₖᵀ diag(1 − σ²/λ) Vₖ)/σ²; log|C| = Σ log λ + (D − k) log σ²
        quad = (np.sum(Xc * Xc, axis=1) - np.sum(proj * proj * (1.0 - sigma2 / lam), axis=1)) / sigma2
        logdet = float(np.sum(np.log(lam)) + (D - lam.size) * np.log(sigma2))
        return -0.5 * (quad + logdet + D * np.log(2.0 * np.pi))

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` (higher is better, scikit-learn's convention)."""
        return float(np.mean(self.score_samples(X)))


def _orthonormal_basis(A, name):
    """Orthonormal basis (D, r) of the column space of ``A`` (D, p) from its SVD; r = numerical rank."""
    U, S, _ = np.linalg.svd(A, full_matrices=False)
    if S.size == 0 or S[0] == 0.0:
        raise ValueError(f"{name} has rank 0; its column space has no angles to measure")
    rank = int(np.sum(S > S[0] * max(A.shape) * np.finfo(np.float64).eps))
    return U[:, :rank]


def principal_angles(A, B):
    """Principal angles, in degrees and increasing, between the column spaces of ``A`` (D, p) and
    ``B`` (D, q) [PCA-6].

    With orthonormal bases ``Q_A``, ``Q_B``, the cosines of the angles are the singular values of
    ``Q_Aᵀ Q_B`` [PCA-6]; there are ``min(rank A, rank B)`` of them. Near 0 the arccos of a cosine
    close to 1 loses all digits (a cosine of 1 − 1e-16 is ~1e-6 degrees), so small angles come from
    their sines instead, the singular values of ``Q_B − Q_A (Q_Aᵀ Q_B)`` [PCA-7] (Björck and Golub's
    method, as in scipy.linalg.subspace_angles). 0 everywhere means one space contains the other.
    """
    A = check_array(A, "A", dtype=np.float64)
    B = check_array(B, "B", dtype=np.float64)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B must have the same number of rows (the ambient dimension), "
                         f"got {A.shape} and {B.shape}")
    QA, QB = _orthonormal_basis(A, "A"), _orthonormal_basis(B, "B")  # (D, r), (D, s)
    C = QA.T @ QB  # (r, s)
    n = min(C.shape)
    cosines = np.linalg.svd(C, compute_uv=False)[:n]  # (n,) decreasing [PCA-6]
    sines = np.sort(np.linalg.svd(QB - QA @ C, compute_uv=False))[:n]  # (n,) increasing [PCA-7]
    small = sines * sines <= 0.5  # angles up to 45 degrees: arcsin is accurate there
    angles = np.where(small, np.arcsin(np.clip(sines, 0.0, 1.0)),
                      np.arccos(np.clip(cosines, -1.0, 1.0)))  # [PCA-6] [PCA-7]
    return np.degrees(angles)


def linear_map(sequential, name="model"):
    """The matrix (n_in, n_out) of a chain of Dense layers with no nonlinearity in between
    (``x ↦ x M + c``); a ValueError names the first nonlinear layer."""
    from npae.models.layers import Dense, Identity
    M = None
    for layer in sequential.layers:
        if isinstance(layer, Dense):
            W = layer.params["W"].astype(np.float64)
            M = W if M is None else M @ W
        elif not isinstance(layer, Identity):
            raise ValueError(f"{name} is not linear: it contains {layer!r}; principal angles with "
                             f"PCA apply to a linear autoencoder (identity activations)")
    return M


def subspace_angles(model, pca, which="decoder"):
    """Principal angles (degrees) between a linear autoencoder's subspace and a fitted PCA's.

    ``which="decoder"``: the span of the decoder's output directions, the columns of ``M_decᵀ``
    (D, Z), where ``M_dec`` (Z, D) is the product of the decoder's weights. ``which="encoder"``: the
    span of the columns of ``M_enc`` (D, Z), the directions the encoder reads. Both are compared
    with the span of ``pca.components_.T`` (D, k). The model must be linear throughout (identity
    activations, ``output="identity"``).
    """
    check_choice("which", which, ("decoder", "encoder"))
    if getattr(model, "output", "identity") != "identity":
        raise ValueError(f"the model's output is {model.output!r}; principal angles with PCA need a "
                         f"linear autoencoder (output='identity', loss='mse')")
    if not hasattr(pca, "components_"):
        raise ValueError("pca is not fitted; call pca.fit(X) first")
    if which == "decoder":
        basis = linear_map(model.decoder, "the decoder").T  # (D, Z)
    else:
        basis = linear_map(model.encoder, "the encoder")  # (D, Z)
    return principal_angles(basis, pca.components_.T)
