"""Tagging on a Dask cluster: bags of texts or token lists, a DataFrame column, many files.

    pip install 'seqtag[dask]'

    >>> import seqtag.dask                                            # doctest: +SKIP
    >>> client = seqtag.dask.local_cluster(2).__enter__()   # or distributed.Client(address)
    >>> tagger = seqtag.dask.register_tagger(client)         # the model loads once per worker
    >>> seqtag.dask.tag_bag(bag_of_texts, tagger).compute()  # each element: Tagger.tag(element)
    >>> seqtag.dask.tag_column(frame, "text", tagger)        # a Series of Tagger.tag(row)
    >>> seqtag.dask.tag_files(tagger, ["corpus/"], "tagged/", skip_existing=True)

The model reaches every worker once, through a WorkerPlugin (client.register_plugin): the
plugin carries the model file's bytes (or nothing, for the bundled model, which every
installation has), and each worker loads it when it starts, a restarted worker too.  Tasks
carry only the plugin's name and their data, never arrays.  Each worker tags on
seqtag.runtime.threads_per_caller(the Dask threads of the workers on its host) threads, so
workers x worker threads x seqtag threads stay within the host's cores.

Results equal tagging in one process (Tagger.tag of each element; seqtag.stream's output
for files): elements are tagged a partition at a time, batched, and a sentence's tags do not
depend on its batch.  Files are read and written by the workers, so input and output
folders must be visible to them all (one machine, or a shared filesystem); each output
file is written atomically (seqtag.stream.tag_file_to), so a worker killed mid-file leaves
no partial file, and Dask runs the task again elsewhere.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

try:
    from distributed import Client, WorkerPlugin, as_completed, get_worker
except ImportError as e:  # an optional extra: say how to get it
    raise ImportError(f"seqtag.dask needs dask and distributed ({e}): "
                      "pip install 'seqtag[dask]'") from None

from .config import TaggingConfig
from .errors import ModelError, SeqtagError
from .stream import (DEFAULT_BATCH_SIZE, FileResult, _check, prepare_folder,
                     remove_stale_temporaries, tag_file_to)

__all__ = ["TaggerPlugin", "WorkerTagger", "register_tagger", "tag_bag", "tag_column",
           "tag_files", "cluster", "local_cluster"]


class TaggerPlugin(WorkerPlugin):
    """Loads a seqtag model on every worker once (register_tagger registers it).

    model_bytes: the model file's content (None: the bundled model); threads: the most
    seqtag threads a worker may use (fewer where the host's cores are shared: see the
    module's docstring); memo_words: Tagger.load's."""

    def __init__(self, model_bytes: bytes | None, threads: int, memo_words: int,
                 model_name: str = "the model") -> None:
        self.model_bytes = model_bytes
        self.model_name = model_name  # what errors call the file (its path on the client)
        self.threads = threads
        self.memo_words = memo_words
        self.tagger = None

    async def setup(self, worker) -> None:
        from . import runtime
        from .tagger import Tagger
        threads = runtime.threads_per_caller(await _dask_threads_on_host(worker),
                                             self.threads)
        if self.model_bytes is None:
            self.tagger = Tagger.load(threads=threads, memo_words=self.memo_words)
            return
        fd, path = tempfile.mkstemp(suffix=".npz", dir=worker.local_directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.model_bytes)
            self.tagger = Tagger.load(path, threads=threads, memo_words=self.memo_words)
        except ModelError as e:
            raise ModelError(str(e).replace(path, self.model_name)) from None
        finally:
            os.unlink(path)

    def teardown(self, worker) -> None:
        self.tagger = None


async def _dask_threads_on_host(worker) -> int:
    """The Dask threads of every worker on this worker's host, its own included (a worker
    still registering is not yet listed by the scheduler: counted apart)."""
    own = worker.state.nthreads
    try:
        identity = await worker.scheduler.identity()
    except Exception:  # an older or unreachable scheduler: count this worker alone
        return own
    host = worker.address.rsplit(":", 1)[0]
    return own + sum(w.get("nthreads", 1) for address, w in identity["workers"].items()
                     if address != worker.address and address.rsplit(":", 1)[0] == host)


@dataclass(frozen=True)
class WorkerTagger:
    """A model loaded on a cluster's workers (register_tagger's result): pass it to
    tag_bag, tag_column and tag_files.  Tasks refer to it by name only."""

    client: Client
    name: str


def register_tagger(client: Client, model: str | os.PathLike[str] | None = None, *,
                    threads: int = TaggingConfig.threads,
                    memo_words: int = TaggingConfig.memo_words,
                    name: str | None = None) -> WorkerTagger:
    """Load `model` (a model file; None: the bundled English model) on every worker of
    `client`'s cluster, once per worker, now and on workers that join later.  threads: the
    most seqtag threads a worker uses (fewer where workers share the cores).  The file is
    read here and its bytes sent once to each worker, so workers need not see it.
    SeqtagError if it cannot be read; ModelError from the workers if it is no model.
    name: the plugin's name on the workers (None: one made from the model and the
    settings, so registering the same twice loads it once).  The model stays loaded until
    unregister_tagger()."""
    settings = TaggingConfig(threads=threads, memo_words=memo_words)
    data = None
    if model is not None:
        try:
            with open(model, "rb") as f:
                data = f.read()
        except OSError as e:
            raise SeqtagError(f"{model}: cannot read the model: {e.strerror or e}") from None
        # a file that is no model: one ModelError here, not a traceback in every worker's
        # log before it
        from .tagger import Tagger
        Tagger.load(model, threads=1, memo_words=0)
    if name is None:
        digest = hashlib.sha256(data or b"bundled").hexdigest()[:16]
        name = f"seqtag-{digest}-{settings.threads}-{settings.memo_words}"
    plugin = TaggerPlugin(data, settings.threads, settings.memo_words,
                          os.fspath(model) if model is not None else "the model")
    try:
        client.register_plugin(plugin, name=name)
    except Exception:  # not left registered, or every restarted worker would fail again
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(name)
        raise
    return WorkerTagger(client, name)


def unregister_tagger(tagger: WorkerTagger) -> None:
    """Unload register_tagger's model from the workers (and from those that join later):
    what a command run on a shared cluster leaves behind otherwise."""
    tagger.client.unregister_worker_plugin(tagger.name)


def _worker_tagger(name: str):
    plugin = get_worker().plugins.get(name)
    if plugin is None or plugin.tagger is None:
        raise SeqtagError(f"no seqtag model {name} on this worker; use register_tagger")
    return plugin.tagger


def tag_items(tagger, items: Sequence[Any]) -> list:
    """Tagger.tag of each item (raw text: a list of sentences of (word, tag) pairs; a list
    of tokens: its (token, tag) pairs), every item of `items` batched together."""
    from .rawtext import segment, text_paragraphs
    kinds = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            kinds.append("text")
        elif isinstance(item, (list, tuple)):
            kinds.append("tokens")
        else:
            raise SeqtagError(f"item {i + 1} is a {type(item).__name__}: seqtag tags strings "
                              "(raw text) and lists of tokens")
    paragraphs = [list(text_paragraphs(item)) for item, kind in zip(items, kinds)
                  if kind == "text"]
    found = segment(itertools.chain.from_iterable(paragraphs), tagger.frontend)
    text_sentences = [[s for _ in range(len(ps)) for s in next(found)[1]]
                      for ps in paragraphs]
    token_lists = [list(item) for item, kind in zip(items, kinds) if kind == "tokens"]
    text_words = [s.words for sentences in text_sentences for s in sentences]
    tags = tagger.predict(text_words + token_lists)
    text_tags, token_tags = iter(tags[:len(text_words)]), iter(tags[len(text_words):])
    sentences_of, tokens_of = iter(text_sentences), iter(token_lists)
    return [[list(zip(s.words, next(text_tags))) for s in next(sentences_of)]
            if kind == "text" else list(zip(next(tokens_of), next(token_tags)))
            for kind in kinds]


def _tag_partition(partition: Iterable[Any], name: str) -> list:
    return tag_items(_worker_tagger(name), list(partition))


def tag_bag(bag, tagger: WorkerTagger):
    """A Dask bag of Tagger.tag(element) for a bag of strings (raw text) or token lists,
    each partition tagged in one batch on a worker."""
    return bag.map_partitions(_tag_partition, tagger.name)


def _tag_series(series, name: str):
    import pandas as pd
    return pd.Series(tag_items(_worker_tagger(name), list(series)), index=series.index,
                     name=series.name, dtype=object)


def tag_column(frame, column: str, tagger: WorkerTagger):
    """A Dask Series of Tagger.tag(value) for the values (raw text, or lists of tokens)
    of a Dask DataFrame's `column`, same index; each partition tagged in one batch."""
    series = frame[column]
    return series.map_partitions(_tag_series, tagger.name, meta=(series.name, object))


def _tag_file_task(name: str, source: str, target: str, options: dict) -> FileResult:
    return tag_file_to(_worker_tagger(name), source, target, **options)


def tag_files(tagger: WorkerTagger, inputs: Iterable[str | os.PathLike[str]],
              output_dir: str | os.PathLike[str], *, skip_existing: bool = False,
              progress: Callable[[FileResult], None] | None = None,
              **options: Any) -> list[FileResult]:
    """seqtag.stream.tag_into_folder spread over the cluster: one task per file, each
    output written atomically by a worker.  Results in the order of the files, whatever
    the order they finished in; progress(result) as each finishes.  A file that cannot be
    tagged, or whose task failed (its worker died too often), is a "failed" result naming
    it; the others still finish."""
    columns = options.get("columns")
    _check(options.get("output_format", "text"), options.get("top_k"),
           options.get("batch_size", DEFAULT_BATCH_SIZE),
           columns if columns is None or isinstance(columns, str) else ",".join(columns))
    plan = prepare_folder(inputs, output_dir)
    results: dict[int, FileResult] = {}
    futures = {}
    for i, (source, target) in enumerate(plan):
        if skip_existing and os.path.exists(target):
            results[i] = FileResult(source, target, "skipped")
            if progress is not None:
                progress(results[i])
        else:
            future = tagger.client.submit(_tag_file_task, tagger.name, os.path.abspath(source),
                                          os.path.abspath(target), options, pure=False)
            futures[future] = i
    try:
        for future in as_completed(futures):
            i = futures[future]
            source, target = plan[i]
            try:
                result = future.result()
                if result.error is not None:  # named as given here, not as the worker saw it
                    result.error = result.error.replace(os.path.abspath(source), source) \
                        .replace(os.path.abspath(target), target)
                result.source, result.target = source, target
            except Exception as e:  # KilledWorker and the like: the task, not the file
                result = FileResult(source, target, "failed",
                                    error=f"{source}: {type(e).__name__}: "
                                          f"{' '.join(str(e).split())}")
            results[i] = result
            if progress is not None:
                progress(result)
    finally:
        for future in futures:
            future.cancel()
        remove_stale_temporaries(target for _, target in plan)
    return [results[i] for i in range(len(plan))]


@contextlib.contextmanager
def _host_environment_kept() -> Iterator[None]:
    """Put back, on leaving, the variables a Dask nanny started in this process sets in
    this process's environment for its worker (distributed.nanny.pre-spawn-environ:
    OPENBLAS_NUM_THREADS=1 and the like, PYTHONHASHSEED, and __DASK_PARENT_PID, which
    names this process the parent of Dask processes): a BLAS library loaded here later
    (SciPy's, say) would start with one thread, and every process started from here
    would inherit them."""
    import dask
    names = list(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    names += ["PYTHONHASHSEED", "__DASK_PARENT_PID"]
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def local_cluster(n_workers: int, threads_per_worker: int = 1) -> Iterator[Client]:
    """A client of a LocalCluster of n_workers worker processes on this machine (no
    dashboard, the workers deaf to SIGINT: seqtag._dask_preload), both closed on
    leaving.  This process's environment is as it was once the
    workers have started, and again at the end (a nanny restarting a dead worker sets
    its variables anew meanwhile)."""
    from distributed import LocalCluster
    with _host_environment_kept():
        with _host_environment_kept(), _sigint_ignored():
            local = LocalCluster(n_workers=n_workers, processes=True,
                                 threads_per_worker=threads_per_worker,
                                 dashboard_address=None,
                                 # Ctrl-C is this process's to handle (it closes them)
                                 preload=["seqtag._dask_preload"],
                                 # the warnings of tasks cancelled by a Ctrl-C or an
                                 # error: the command says what happened in one line
                                 silence_logs=logging.ERROR)
        with local, Client(local) as client:
            yield client


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this process meanwhile (only from the main thread, where Python
    handles it): the worker processes started meanwhile inherit that, so a Ctrl-C while
    they start up does not end each with a traceback; seqtag._dask_preload then ignores it
    in them for good (and in those a nanny starts again later).  A Ctrl-C in that second
    or two is lost: the next one stops the command."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def cluster(scheduler: str) -> Iterator[Client]:
    """A client of a running Dask scheduler ("tcp://host:8786"), or of a LocalCluster of N
    worker processes of one thread each on this machine ("local:N"; "local": one per
    core), closed (with the local cluster) on leaving."""
    if scheduler == "local" or scheduler.startswith("local:"):
        count = scheduler.partition(":")[2]
        from . import runtime
        if count and (not count.isdigit() or int(count) < 1):
            raise SeqtagError(f"--scheduler {scheduler}: local:N needs a positive number of "
                              "workers")
        workers = int(count) if count else runtime.host_cores()
        with local_cluster(workers) as client:
            yield client
        return
    failure: BaseException | None = None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError, TypeError) as e:  # TypeError: tls:// alone
        failure = SeqtagError(f"--scheduler {scheduler}: cannot connect: "
                              f"{' '.join(str(e).split())}")
    except BaseException as e:  # a Ctrl-C meanwhile, anything else: raised as it is
        failure = e.with_traceback(None)
    if failure is not None:
        # the half-made Client (kept in a cycle through the error's traceback, gone with
        # it now) closed now: collected later, by whatever allocation triggers the
        # collector, its close() can come inside distributed's own start of another
        # cluster's event loop, which holds the lock that close() waits for: a hang (seen
        # in the test suite, a LocalCluster started after a failed connection)
        gc.collect()
        raise failure
    with client:
        yield client
