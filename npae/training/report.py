"""Readable lines about training: the fixed per-epoch log line shared by ``fit(verbose=...)``, the
CLI and the demos, and the choice of which epochs to show.

``epoch   3/100 | loss  101.21 | recon   95.10 | kl   6.11 | val_loss  104.02``: the epoch counter
padded to the width of the total, then every term of the history in a fixed order (``loss``,
``recon``, ``kl``, ``penalty``, ``accuracy``, then anything else, then the ``val_`` terms), each
rounded to a width that depends on its size so that columns line up from one epoch to the next.
"""
import sys
import time

import numpy as np

_ORDER = ("loss", "recon", "kl", "penalty", "accuracy")


def _ordered_terms(history):
    base = [k for k in history if not k.startswith("val_")]
    first = [k for k in _ORDER if k in base] + [k for k in base if k not in _ORDER]
    val = [f"val_{k}" for k in first if f"val_{k}" in history]
    val += [k for k in history if k.startswith("val_") and k not in val]
    return first + val


def format_value(value):
    """A number in at most 8 characters with about 5 significant digits: ``101.21``, ``0.0512``,
    ``1.23e+05``; right-aligned in 8."""
    value = float(value)
    magnitude = abs(value)
    if value != value or magnitude == float("inf"):
        text = str(value)
    elif magnitude == 0 or 1e-3 <= magnitude < 1e5:
        decimals = max(0, 4 - int(np.floor(np.log10(magnitude)))) if magnitude else 2
        text = f"{value:.{min(decimals, 6)}f}"
    else:
        text = f"{value:.2e}"
    return f"{text:>8}"


def log_line(epoch, history, epochs=None):
    """The log line of epoch ``epoch`` (0-based) of a ``fit`` history, e.g.
    ``epoch  3/100 | loss   101.21 | recon    95.10 | kl     6.11``."""
    total = epochs if epochs is not None else len(history.get("loss", ())) or epoch + 1
    width = len(str(total))
    terms = " | ".join(f"{k} {format_value(history[k][epoch])}" for k in _ordered_terms(history)
                       if len(history[k]) > epoch)
    return f"epoch {epoch + 1:>{width}}/{total} | {terms}"


def epochs_to_show(n, every_up_to=20, max_lines=20):
    """Which of ``n`` epochs (0-based) a log shows: all of the first ``every_up_to``, then every k-th
    so that about ``max_lines`` lines are printed, and always the last."""
    if n <= every_up_to:
        return list(range(n))
    step = max(1, int(np.ceil(n / max_lines)))
    shown = [e for e in range(n) if e < every_up_to // 2 or (e + 1) % step == 0]
    if n - 1 not in shown:
        shown.append(n - 1)
    return shown


def should_show(epoch, epochs, every_up_to=20, max_lines=20):
    """True when epoch ``epoch`` (0-based) of ``epochs`` is one that :func:`epochs_to_show` lists:
    the same choice, made one epoch at a time (for lines printed while training runs)."""
    if epochs <= every_up_to:
        return True
    step = max(1, int(np.ceil(epochs / max_lines)))
    return epoch < every_up_to // 2 or (epoch + 1) % step == 0 or epoch == epochs - 1


def print_history(history, max_lines=20, file=None):
    """Print :func:`log_line` for the epochs :func:`epochs_to_show` picks (all, for a short run)."""
    n = len(history["loss"])
    for epoch in epochs_to_show(n, every_up_to=max_lines, max_lines=max_lines):
        print(log_line(epoch, history), file=file)


def _in_jupyter_kernel():
    """True inside a Jupyter kernel (IPython is only looked at when something imported it)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 (any failure means: not a kernel)
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _live_bar_class(stream):
    """The tqdm class for a live bar, or None when no live bar fits: a terminal gets tqdm's text
    bar, a Jupyter kernel with ipywidgets its widget; a redirected stream or a kernel without
    ipywidgets gets no bar (only the summary line, so a log or a cell keeps one line per fit)."""
    if _in_jupyter_kernel():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
        except ImportError:
            return None
        return tqdm
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        from tqdm.std import tqdm
        return tqdm
    return None


class Progress:
    """What ``fit`` shows while it trains: a live progress bar where one fits (see
    :func:`_live_bar_class`), the per-epoch :func:`log_line` when ``verbose`` (every epoch of a short
    run, every k-th of a long one, always the last: :func:`should_show`), and one summary line at
    the end (the bar's last state, or a line of its own)."""

    def __init__(self, name, *, epochs, n_batches, start_epoch, start_batch, bar, verbose,
                 stream=None):
        self.name, self.epochs, self.verbose = name, epochs, verbose
        # a notebook tints stderr red, as if it were an error: there the summary goes to stdout
        self.stream = stream if stream is not None else (sys.stdout if _in_jupyter_kernel() else sys.stderr)
        self.start_epoch, self.started = start_epoch, time.perf_counter()
        self.bar = None
        cls = _live_bar_class(self.stream) if bar else None
        if cls is not None:
            self.bar = cls(total=epochs * n_batches, initial=start_epoch * n_batches + start_batch,
                           desc=name, unit="batch", leave=True, file=self.stream, mininterval=0.2)
        self.show_summary = bar

    def batch(self, count=1):
        if self.bar is not None:
            self.bar.update(count)

    def epoch(self, epoch, history):
        if self.bar is not None:
            self.bar.set_description(f"{self.name} epoch {epoch + 1}/{self.epochs}", refresh=False)
            self.bar.set_postfix({k: format_value(v[-1]).strip() for k, v in history.items()
                                  if not k.startswith("val_") or k == "val_loss"}, refresh=False)
        if self.verbose and should_show(epoch, self.epochs):
            line = log_line(epoch, history, self.epochs)
            if self.bar is not None and hasattr(self.bar, "write"):
                self.bar.write(line, file=sys.stdout)  # clears the bar, prints, redraws it below
                sys.stdout.flush()
            else:
                print(line, flush=True)

    def close(self, history, epochs_done):
        seconds = time.perf_counter() - self.started
        done = epochs_done - self.start_epoch
        last = {k: v[-1] for k, v in history.items() if v}
        terms = " | ".join(f"{k} {format_value(last[k]).strip()}" for k in _ordered_terms(last))
        summary = f"{self.name}: {done} epoch{'s' if done != 1 else ''} in {seconds:.1f} s" + (
            f" | {terms}" if terms else "")
        if self.bar is not None:
            self.bar.set_description(summary, refresh=False)
            self.bar.set_postfix({}, refresh=False)
            self.bar.close()
        elif self.show_summary:
            print(summary, file=self.stream, flush=True)


class TaskProgress:
    """Progress of a long computation other than training (an evaluation over many examples).

    Where a live bar fits (:func:`_live_bar_class`: a terminal, a Jupyter widget) it is a tqdm bar
    that disappears when done; elsewhere (a redirected stderr, a log file) it is plain lines, never
    a carriage return: one at most every ``every`` seconds (``IWAE-500: 4000/10000 examples (40%),
    31 s``) and one at the end (``IWAE-500: 10000 examples in 78.2 s``). ``enabled=False``: silent.
    Use as a context manager, calling :meth:`update` with the work just done.
    """

    def __init__(self, total, desc, *, unit="example", stream=None, enabled=True, every=10.0):
        self.total, self.desc, self.unit, self.every = int(total), desc, unit, float(every)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled, self.done = enabled, 0
        self.started = self.last = time.perf_counter()
        self.bar = None
        cls = _live_bar_class(self.stream) if enabled else None
        if cls is not None:
            self.bar = cls(total=self.total, desc=desc, unit=unit, leave=False, file=self.stream,
                           mininterval=0.2)

    def update(self, n=1):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.enabled and now - self.last >= self.every and self.done < self.total:
            self.last = now
            print(f"{self.desc}: {self.done}/{self.total} {self.unit}s "
                  f"({100 * self.done / max(1, self.total):.0f}%), {now - self.started:.0f} s",
                  file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:  # a live bar said it all while it ran
            self.bar.close()
            self.bar = None
            self.enabled = False
        if self.enabled:
            s = "" if self.done == 1 else "s"
            print(f"{self.desc}: {self.done} {self.unit}{s} in {time.perf_counter() - self.started:.1f} s",
                  file=self.stream, flush=True)
        self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
