"""Tagging files on Dask: scheduler overhead per task, 1 and 2 workers against one process,
and what that predicts for 100 workers.

    python bench/dask_scaling.py [--files 16] [--noop-tasks 2000]

The text: EWT train's raw text (bench/common.raw_text, paragraphs) cut into --files files of
whole paragraphs, in a temporary folder.  Measured in one run:

  one process   seqtag.stream.tag_into_folder with a tagger on 2 threads (what `seqtag tag
                -i DIR --output-dir OUT` does), the model loaded before timing
  1 worker      seqtag.dask.tag_files on a LocalCluster of 1 worker process, 1 Dask thread
                (seqtag gives it 2 threads: the host's 2 cores)
  2 workers     the same on 2 worker processes of 1 thread (seqtag: 1 thread each)
  cluster start and model loading are not timed (reported apart); each timed run tags
  every file into an empty folder
  overhead      --noop-tasks tasks that do nothing, submitted at once and gathered on the
                2-worker cluster: the scheduler's tasks/s; the round trip of one task
                submitted alone (median of 50); the bytes one file task moves (its pickled
                function and arguments, and its pickled result)

Prediction for W workers: a worker tags at r tokens/s (the 2-worker run's per-worker
rate); the scheduler handles T tasks/s; a file of S tokens keeps the scheduler's share
below 5 % when W * r / S <= 0.05 * T, i.e. S >= 20 * W * r / T, and the per-task round
trip L below 5 % of a file's time when S >= 20 * L * r.  Tokens convert to bytes at this
text's bytes per token.
"""

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line, raw_text  # noqa: E402


def noop(x):
    return x


def split_files(text, count, folder):
    paragraphs = text.split("\n\n")
    per_file = -(-len(paragraphs) // count)
    paths = []
    for k in range(count):
        part = paragraphs[k * per_file:(k + 1) * per_file]
        if not part:
            break
        path = os.path.join(folder, f"part{k:03d}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n\n".join(part).strip("\n") + "\n")
        paths.append(path)
    return paths


def timed_cluster_run(n_workers, paths, out):
    import seqtag.dask
    start = time.perf_counter()
    with seqtag.dask.local_cluster(n_workers) as client:
        workers = seqtag.dask.register_tagger(client)
        ready = time.perf_counter() - start
        start = time.perf_counter()
        results = seqtag.dask.tag_files(workers, paths, out)
        seconds = time.perf_counter() - start
        assert all(r.status == "done" for r in results), results
        extra = overheads(client, workers, paths[0], out) if n_workers == 2 else None
    return ready, seconds, sum(r.tokens for r in results), extra


def overheads(client, workers, path, out):
    import seqtag.dask
    from distributed import wait
    n = ARGS.noop_tasks
    start = time.perf_counter()
    futures = client.map(noop, range(n), pure=False)
    wait(futures)
    tasks_per_s = n / (time.perf_counter() - start)
    del futures
    trips = []
    for i in range(50):
        start = time.perf_counter()
        client.submit(noop, i, pure=False).result()
        trips.append(time.perf_counter() - start)
    task_bytes = len(pickle.dumps((seqtag.dask._tag_file_task, workers.name,
                                   os.path.abspath(path), os.path.join(out, "x"), {})))
    result = client.submit(seqtag.dask._tag_file_task, workers.name, os.path.abspath(path),
                           os.path.join(out, "overhead.txt"), {}, pure=False).result()
    return tasks_per_s, statistics.median(trips), task_bytes, len(pickle.dumps(result))


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--noop-tasks", type=int, default=2000)
    ARGS = parser.parse_args()
    from seqtag.stream import tag_into_folder
    from seqtag.tagger import Tagger
    text = raw_text(open(ewt_path("train"), encoding="utf-8").read())
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        paths = split_files(text, ARGS.files, folder)
        size = sum(os.path.getsize(p) for p in paths)
        tagger = Tagger.load(threads=2)
        start = time.perf_counter()
        results = tag_into_folder(tagger, paths, os.path.join(folder, "one"))
        one_s = time.perf_counter() - start
        tokens = sum(r.tokens for r in results)
        del tagger
        print(f"{len(paths)} files, {size:,} bytes, {tokens:,} tokens "
              f"({size / tokens:.2f} bytes/token)")
        print(f"one process, 2 threads: {one_s:.2f} s = {tokens / one_s:,.0f} tokens/s")
        rates = {}
        for n in (1, 2):
            ready, seconds, done, extra = timed_cluster_run(n, paths, os.path.join(folder,
                                                                                   f"w{n}"))
            assert done == tokens
            rates[n] = tokens / seconds
            print(f"{n} worker{'s' if n > 1 else ' '} x 1 thread: {seconds:.2f} s = "
                  f"{rates[n]:,.0f} tokens/s ({rates[n] / (tokens / one_s):.2f} x one process;"
                  f" cluster start + model load {ready:.1f} s)")
            if extra:
                tasks_per_s, trip, task_bytes, result_bytes = extra
        print(f"scheduler: {tasks_per_s:,.0f} no-op tasks/s; one task's round trip "
              f"{trip * 1000:.1f} ms; a file task moves {task_bytes} bytes out and "
              f"{result_bytes} back (the text stays on the shared disk)")
        per_worker = rates[2] / 2
        for workers in (100,):
            s_sched = 20 * workers * per_worker / tasks_per_s
            s_trip = 20 * trip * per_worker
            s_min = max(s_sched, s_trip)
            print(f"{workers} workers: predicted {workers * per_worker:,.0f} tokens/s; scheduler "
                  f"below 5 % for files of >= {s_sched:,.0f} tokens, round trip below 5 % for "
                  f">= {s_trip:,.0f}: files of >= {s_min:,.0f} tokens "
                  f"(~{s_min * size / tokens / 1e6:.2f} MB of text)")


if __name__ == "__main__":
    main()
