"""Speed, a layer of its own above the math: the backend switch (:mod:`~npae.fast.backends`), the
numba kernels that replace some units of the pairs (:mod:`~npae.fast.kernels`, tested equal to
them), and the BLAS thread policy (:mod:`~npae.fast.threads`)."""
