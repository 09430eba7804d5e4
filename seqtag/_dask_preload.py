"""Run by each worker process of seqtag.dask.local_cluster as it starts (a Dask preload):
the worker ignores SIGINT.  A Ctrl-C at a terminal goes to every process of the command,
the workers included; the command itself stops them (it closes the cluster), so each need
not print its own KeyboardInterrupt traceback first."""

import signal


def dask_setup(worker) -> None:  # the hook Dask calls in the worker's main thread
    signal.signal(signal.SIGINT, signal.SIG_IGN)
