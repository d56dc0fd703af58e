"""Everything that reads or writes bytes: the model-file format (:mod:`~npae.data.io`) and the data
sets (:mod:`~npae.data.datasets`, public as ``npae.datasets``: the bundled digits, IDX files,
MNIST and Fashion-MNIST, your own files, toy sets). Reading is bounded before anything large is
allocated."""
