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

#: Share of the encoder's log-variances the clamp may hold during one fit before ``fit`` warns.
LOGVAR_CLAMP_WARN_FRACTION = 0.01

#: Share of the encoder's log-variances the clamp may hold during one fit before ``fit`` raises
#: DivergenceError: with more than half of them stuck at the clamp (no gradient), the run is
#: meaningless, not a success (data far from unit scale: pixels 0..255 give 99%).
LOGVAR_CLAMP_ERROR_FRACTION = 0.5

#: Largest |value| a model accepts in its data (``fit``, ``evaluate``, ``transform``, the bounds...).
#: The models are initialised for inputs of about unit scale (Glorot/He keep activations near the
#: inputs' scale): at |x| = 1e4 every sigmoid or tanh unit is saturated, a squared error per entry
#: is 1e8 and a Gaussian decoder would need σ ≈ 1e4 (its fixed variance is 1), so training and the
#: numbers it reports stop meaning anything well before a float overflows. Pixels 0..255 and
#: standardized data lie far inside; raw data beyond it are refused with a message to scale them.
DATA_ABS_MAX = 1e4

#: Floor of a learned Gaussian decoder log-variance, applied smoothly
#: (``floor + softplus(raw − floor)``, docs/derivations/gaussdec.md#gaussdec-5): σ² > 1e-4, i.e.
#: σ > 0.01, well below the noise of the bundled point clouds (moons: 0.05) and of 17-level digit
#: pixels (quantisation σ ≈ 0.018); it bounds the precision 1/σ² by 1e4 so nothing overflows.
DECODER_LOGVAR_FLOOR = -9.210340371976182  # log(1e-4)

#: Initial bias of an IAF step's gate s (σ(1) ≈ 0.73): each step starts near the identity,
#: z_new ≈ 0.73 z + 0.27 m (Kingma et al. 2016, docs/derivations/flow.md#flow-13).
IAF_GATE_BIAS = 1.0

#: wᵀu below which a planar flow's invertibility margin softplus(wᵀu) underflows to 0 in float64
#: (docs/derivations/flow.md#flow-1).
PLANAR_ALPHA_MIN = -700.0

#: Smallest probability fed to ``log`` in the textbook (probability-space) cross-entropy. The
#: logit-space form needs no such constant; this one exists only for the lecture formula.
LOG_EPS = 1e-12

#: Step of the fourth-order central differences in :mod:`npae.gradcheck` (float64 only):
#: f'(x) ~ [f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)] / 12h. Truncation error is h^4 f^(5) / 30
#: ~ 3e-18 f^(5); round-off is about 1.5 * eps * |f| / h ~ 3e-12 |f|. With the plain two-point
#: difference at h = 1e-6 the round-off alone (~2e-10 |f|) exceeds 1e-6 of a gradient array whose
#: entries are 1e-4 of the loss, which real models have (see docs/testing.md).
#: Inputs must stay 2h away from kinks of relu-like activations.
GRADCHECK_STEP = 1e-4

#: Relative error above which :mod:`npae.gradcheck` reports a failure.
GRADCHECK_TOL = 1e-6

#: Default ``eps`` of Adam and RMSprop, and the floor of Adagrad's denominator.
OPTIM_EPS = 1e-8

#: Dtypes a model may be built in.
DTYPES = ("float32", "float64")

#: Variance across the data of a latent's posterior mean above which the latent counts as active
#: (Burda, Grosse & Salakhutdinov, 2016).
ACTIVE_UNIT_THRESHOLD = 0.01

# --------------------------------------------------------------------------------------------------
# Model files (npae.data.io): limits checked before anything is decompressed or built. Each is looked up
# when a file is read, so a program may raise it (``npae.constants.MODEL_FILE_MAX_BYTES = 4 << 30``);
# ``npae.load(path, max_bytes=...)`` overrides the first for one call. See docs/files.md.
# --------------------------------------------------------------------------------------------------

#: Largest total size of the arrays of one model file or checkpoint, in bytes (as their ``.npy``
#: members declare it, before reading them). 1 GiB holds a float64 model of about 30 million
#: parameters with its Adam moments; the MNIST VAE of the demos (784-400-20) needs about 20 MB.
MODEL_FILE_MAX_BYTES = 1 << 30

#: Largest JSON header of a model file, in bytes. A checkpoint's history takes about 20 bytes per
#: epoch and loss term: 8 MiB is some 60,000 epochs of six terms.
MODEL_HEADER_MAX_BYTES = 8 << 20

#: Deepest nesting of lists and objects in a header (npae writes at most 5 levels).
MODEL_HEADER_MAX_DEPTH = 32

#: Most members (arrays) of one model file; a checkpoint holds about four per parameter array.
MODEL_FILE_MAX_MEMBERS = 10_000

# --------------------------------------------------------------------------------------------------
# Divergence (npae.training.loop; docs/derivations/clip.md#clip-3)
# --------------------------------------------------------------------------------------------------

#: Training stops with DivergenceError when a batch loss exceeds this many times the early reference
#: (the larger of the first batch's |loss| and the median |loss| of the first
#: DIVERGENCE_REFERENCE_BATCHES batches). In healthy runs of every model of the tests, the demos and
#: ``npae train`` no batch loss exceeded 1.45 times the reference; Adam at lr=1e3 reaches 2e16 times
#: it on its second batch (docs/derivations/clip.md#clip-3). math.inf switches the rule off.
DIVERGENCE_FACTOR = 1e4

#: A fit that ends with a mean epoch loss above this many times the first batch's |loss| (the
#: untrained model) raises DivergenceError instead of returning [CLIP-4]: it ended far worse than it
#: began (docs/derivations/clip.md#clip-4). Healthy runs end below their first loss; math.inf
#: switches the rule off.
DIVERGENCE_OUTCOME_FACTOR = 10.0

#: Number of batches at the start of a fit whose losses make the reference of DIVERGENCE_FACTOR.
DIVERGENCE_REFERENCE_BATCHES = 10

#: The ``auto`` backend's break-even (npae.fast.backends.choose; docs/performance.md, "the auto
#: rule"): entries of elementwise work in a job (rows × dense outputs + updates × parameters) from
#: which the kernels save more than their cold start (numba's import and compilation, about 1.1 s
#: on an empty cache, 0.2 s on a warm one). Measured, whole processes against per-step savings:
#: the main job's VAE (38 k entries a step) breaks even cold at about 10,000 steps (3.9e8), an
#: MNIST-size VAE 784-400-20 (856 k a step) at about 420 steps in float64 (3.6e8) and 1,000 in
#: float32 (8.7e8).
AUTO_FUSED_MIN_ENTRIES = 500_000_000
#: The same for a model with convolution layers, in rows (examples through the model): one epoch
#: of the conv VAE on MNIST with an empty numba cache, as whole processes, paired: 4,096 rows
#: (32 steps of 128) fused 8.1 s against reference 7.0 s, 8,192 rows 11.9 against 12.7 s
#: (docs/performance.md), so the kernels pay from about 50 steps on.
AUTO_FUSED_MIN_CONV_ROWS = 8_192

# --------------------------------------------------------------------------------------------------
# Budgets (npae.validation.check_memory / check_work): what one call may ask of the machine, estimated
# from the arguments before anything is allocated or run. Each is looked up when a check runs, so a
# program may raise it (``npae.constants.MEMORY_MAX_BYTES = 16 << 30``); the environment variables
# NPAE_MAX_BYTES and NPAE_MAX_WORK (numbers such as 16e9) win over both, for one shell or one run.
# --------------------------------------------------------------------------------------------------

#: Largest memory, in bytes, one model (its parameters with their gradients and Adam's two moments)
#: or one training step, sampling call or decoded image may take. 2 GiB holds a float64 model of some
#: 60 million parameters; the MNIST VAE of the demos (784-400-20) takes about 21 MB with Adam.
MEMORY_MAX_BYTES = 2 << 30

#: Largest work, in multiply-adds of the model's dense layers, of one held-out bound
#: (``log_likelihood_estimate``, ``npae evaluate --k``): about an hour at 3e9 multiply-adds a second.
#: The CLI's default ladder (IWAE-500) on MNIST's 10,000 test images with a 784-400-20 VAE is 3e12.
WORK_MAX_MULTIPLY_ADDS = 1e13

#: Most steps of a VAE's normalising flow. Rezende & Mohamed (2015) used up to 80; a checkpoint holds
#: about four arrays per parameter array (IAF: five a step), under MODEL_FILE_MAX_MEMBERS.
FLOW_STEPS_MAX = 256

# --------------------------------------------------------------------------------------------------
# Training settings (docs/training.md): one table for the library and the ``npae train`` command
# --------------------------------------------------------------------------------------------------

#: The training settings every estimator takes in its constructor (so that ``clone`` keeps them and
#: a grid searches them, as scikit-learn's ``MLPRegressor``), and their defaults. ``fit(X, **overrides)``
#: changes them for one call without changing the constructor's values. The library's defaults suit
#: a data set of MNIST's size (60,000 examples: 10 epochs are about 9,400 steps of 64).
#: ``verbose="auto"``: one summary line for a model you fit yourself, silence for a copy that
#: scikit-learn made (``clone``: GridSearchCV, cross_validate), whose fits the meta-estimator reports.
EPOCHS = 10
BATCH_SIZE = 64
LR = 1e-3
OPTIMIZER = "adam"
VERBOSE = "auto"
#: The settings and their defaults (a model class of your own without them in its constructor
#: trains with these).
TRAINING_DEFAULTS = {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "lr": LR, "optimizer": OPTIMIZER,
                     "verbose": VERBOSE, "callbacks": None}
TRAINING_SETTINGS = tuple(TRAINING_DEFAULTS)

#: The main job, ``npae train vae`` with no options: a 64-128-2 VAE on the 1,527 training digits of
#: the bundled 8x8 set, whose 2-D code is drawn. The data are small (24 steps of 64 an epoch), so
#: the job takes 100 epochs (2,400 steps) and a learning rate of 2e-3 to converge, where the
#: library's 10 epochs at 1e-3 would stop half-trained; a 2-D code and 128 hidden units are what
#: the figures (latent scatter, manifold grid) need. The CLI reads its defaults from here.
#: ``npae.VAE().fit(X)`` is NOT the main job: it is the library's 784-400-20 MNIST VAE of
#: Kingma & Welling (2014) with the settings above; ``npae.VAE(hidden=(128,), latent_dim=2,
#: epochs=100, lr=2e-3).fit(X)`` is.
MAIN_JOB = {"epochs": 100, "batch_size": BATCH_SIZE, "lr": 2e-3, "hidden": (128,), "latent_dim": 2}
