"""The ``npae`` command line: ``npae train ae``."""
import argparse
import json
import os
import sys
import time

import numpy as np


def _train(args):
    from . import datasets
    from .autoencoder import Autoencoder

    X, y = datasets.load_digits()
    model = Autoencoder(X.shape[1], hidden=tuple(args.hidden), latent_dim=args.latent_dim,
                        dtype=args.dtype, seed=args.seed)
    t0 = time.perf_counter()
    history = model.fit(X, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    for epoch, loss in enumerate(history["loss"], 1):
        print(f"epoch {epoch} | loss {loss:.3f}")
    out = args.out or os.path.join("runs", f"{args.model}-digits")
    os.makedirs(out, exist_ok=True)
    metrics = {"model": args.model, "data": "digits", "epochs": args.epochs,
               "final_loss": history["loss"][-1], "history": history, "seconds": seconds}
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
    print(f"wrote {os.path.join(out, 'metrics.json')}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="npae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model on the bundled digits")
    train.add_argument("model", choices=["ae"])
    train.add_argument("--hidden", type=int, nargs="*", default=[32])
    train.add_argument("--latent-dim", type=int, default=2)
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default=None)
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
