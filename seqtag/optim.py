"""Optimisers that update parameters in place: Adam and plain SGD, with global-norm clipping.

Embedding gradients arrive sparse, as (row ids, rows): only the rows a batch used are
updated (for Adam this is the "lazy" variant: a row's moments decay when it is used).
"""

import numpy as np

from . import _core, runtime


def global_norm(dense, sparse):
    total = sum(float(np.vdot(g, g)) for g in dense.values())
    total += sum(float(np.vdot(rows, rows)) for _, rows in sparse.values())
    return np.sqrt(total)


def clip_by_global_norm(dense, sparse, max_norm):
    """Scale all gradients down together so their global norm is at most max_norm."""
    norm = global_norm(dense, sparse)
    if max_norm and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in dense.values():
            g *= scale
        for _, rows in sparse.values():
            rows *= scale
    return norm


def _run_jobs(jobs):
    for _, kernel, args in jobs:
        kernel(*args)


def run_jobs(jobs, threads):
    """Run (size, kernel, arguments) jobs whose kernels release the GIL: with threads >= 2
    half of them (by size) on the second thread.  Each job runs whole on one thread, so
    the result does not depend on the threads."""
    if threads < 2 or len(jobs) < 2:
        _run_jobs(jobs)
        return
    halves, sizes = ([], []), [0, 0]
    for job in sorted(jobs, key=lambda j: -j[0]):  # largest first, to the lighter half
        lighter = 0 if sizes[0] <= sizes[1] else 1
        halves[lighter].append(job)
        sizes[lighter] += job[0]
    other = runtime.second_thread().submit(_run_jobs, halves[1])
    try:
        _run_jobs(halves[0])
    finally:
        other.result()


class SGD:
    def __init__(self, params, lr=0.1):
        self.params = params
        self.lr = lr
        self.steps = 0

    def step(self, dense, sparse):
        self.steps += 1
        for name, g in dense.items():
            self.params[name] -= self.lr * g
        for name, (ids, rows) in sparse.items():
            self.params[name][ids] -= self.lr * rows

    def state(self):
        return {}, {"steps": self.steps}

    def load_state(self, arrays, meta):
        self.steps = meta["steps"]


class Adam:
    """threads=2 updates half of the parameters (by size) on a second thread: the update
    is a pass over every weight and its two moments that the two cores can share (each
    array is updated by one thread, so the result does not depend on the threads)."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, threads=1,
                 dense_rows=False):
        """dense_rows: update every row of the embeddings at every step (their gradient
        zero where a batch did not use them), as torch.optim.Adam does, instead of only the
        rows a batch used: each row's moments keep moving it after its word was seen."""
        self.params = params
        self.dense_rows = dense_rows
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.threads = threads
        self.steps = 0
        for name, p in params.items():  # updated in place through flat views
            if not p.flags.c_contiguous:
                raise ValueError(f"parameter {name} must be C-contiguous")
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}

    def step(self, dense, sparse):
        self.steps += 1
        b1, b2 = self.beta1, self.beta2
        # bias corrections folded into the step size
        lr = self.lr * np.sqrt(1 - b2 ** self.steps) / (1 - b1 ** self.steps)
        jobs = []  # (size, kernel, arguments); the kernels release the GIL
        if self.dense_rows:
            dense = dict(dense)
            for name, (ids, rows) in sparse.items():
                full = np.zeros_like(self.params[name])
                full[ids] = rows  # ids are distinct (seqtag.network._sum_rows)
                dense[name] = full
            sparse = {}
        for name, g in dense.items():
            jobs.append((g.size, _core.adam_update, (
                self.params[name].reshape(-1), np.ascontiguousarray(g).reshape(-1),
                self.m[name].reshape(-1), self.v[name].reshape(-1), lr, b1, b2, self.eps)))
        for name, (ids, rows) in sparse.items():
            jobs.append((rows.size, _core.adam_update_rows, (
                self.params[name], self.m[name], self.v[name],
                np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(rows), lr, b1,
                b2, self.eps)))
        run_jobs(jobs, self.threads)

    def state(self):
        arrays = {f"adam.m.{k}": v for k, v in self.m.items()}
        arrays.update({f"adam.v.{k}": v for k, v in self.v.items()})
        return arrays, {"steps": self.steps}

    def load_state(self, arrays, meta):
        for name in self.m:
            self.m[name][...] = arrays[f"adam.m.{name}"]
            self.v[name][...] = arrays[f"adam.v.{name}"]
        self.steps = meta["steps"]
