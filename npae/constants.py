"""Named numerical constants, in one place.

Every threshold that changes a number npae reports lives here, so that a reader can find it and a
test can refer to it by name.
"""

#: Clamp applied to a VAE encoder's ``logvar`` output before ``std = exp(0.5 * logvar)``.
#: exp(0.5 * 30) is about 3e6 and exp(-30) about 1e-13: far outside anything training produces, so
#: inside the range the clamp is the identity and its gradient is exactly 1 (it cannot make a
#: gradient wrong there); outside it the gradient is 0 and the model counts how often it fired.
LOGVAR_MIN = -30.0
LOGVAR_MAX = 30.0

#: Smallest probability fed to ``log`` in the textbook (probability-space) cross-entropy. The
#: logit-space form needs no such constant; this one exists only for the lecture formula.
LOG_EPS = 1e-12

#: Step of the central differences in :mod:`npae.gradcheck` (float64 only). Truncation error is
#: O(h^2) ~ 1e-12 and round-off O(eps * |f| / h) ~ 1e-10 * |f| for this h.
GRADCHECK_STEP = 1e-6

#: Relative error above which :mod:`npae.gradcheck` reports a failure.
GRADCHECK_TOL = 1e-6

#: Default ``eps`` of Adam and RMSprop, and the floor of Adagrad's denominator.
OPTIM_EPS = 1e-8

#: Dtypes a model may be built in.
DTYPES = ("float32", "float64")
