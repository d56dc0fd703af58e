"""Everything that reads or writes bytes: the model-file format (:mod:`~npae.data.io`, with
:mod:`~npae.data.io_read` and :mod:`~npae.data.io_format`) and the data sets
(:mod:`~npae.data.datasets`, public as ``npae.datasets``: the bundled digits, IDX files
(:mod:`~npae.data.idx`), MNIST and Fashion-MNIST (:mod:`~npae.data.mnist`), your own files
(:mod:`~npae.data.userfiles`), toy sets (:mod:`~npae.data.toy`)). Reading is bounded before anything
large is allocated (:mod:`~npae.data.bounded`)."""
