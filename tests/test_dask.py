"""Tagging many files into a folder (seqtag.stream.tag_into_folder, `seqtag tag --output-dir`)
and on a Dask cluster (seqtag.dask): one LocalCluster of 2 worker processes for the module,
the bundled model loaded once per worker; every result is compared with tagging in this
process."""

import gc
import os
import random
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqtag import Tagger, cli
from seqtag.stream import output_plan, tag_into_folder

WORDS = ("the a dog cat ran barked quickly house green old man woman saw book flight "
         "river Paris London tomorrow yesterday seven children played with under over "
         "garden blue unhappily zyxt flarbing").split()


def paragraph(rng, sentences):
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        out.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
    return " ".join(out)


def write_corpus(folder, files, paragraphs, seed=0):
    """`files` raw-text files of `paragraphs` paragraphs each, under folder/in; their paths."""
    rng = random.Random(seed)
    folder = Path(folder) / "in"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(files):
        path = folder / f"doc{k:02d}.txt"
        path.write_text("\n\n".join(paragraph(rng, 4) for _ in range(paragraphs)) + "\n",
                        encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def tagger():
    return Tagger.load()


def read_folder(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


# ---------------------------------------------------------------- one process


def test_output_plan_expands_folders_and_patterns_and_refuses_clashing_names(tmp_path):
    paths = write_corpus(tmp_path, 3, 1)
    (tmp_path / "in" / ".hidden").write_text("x")
    plan = output_plan([tmp_path / "in"], tmp_path / "out")
    assert plan == [(str(p), str(tmp_path / "out" / p.name)) for p in paths]
    assert output_plan([str(tmp_path / "in" / "doc0[12].txt")], "o") == [
        (str(paths[1]), os.path.join("o", paths[1].name)),
        (str(paths[2]), os.path.join("o", paths[2].name))]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "doc00.txt").write_text("Hi.\n")
    with pytest.raises(Exception, match=r"doc00.txt and .*other/doc00.txt would both be "
                                        r"written to .*out/doc00.txt"):
        output_plan([tmp_path / "in", tmp_path / "other"], tmp_path / "out")
    with pytest.raises(Exception, match=r"nothing\*.txt: no file matches this pattern"):
        output_plan([str(tmp_path / "nothing*.txt")], tmp_path / "out")


def test_folder_output_equals_the_stream_and_failures_are_named(tmp_path, tagger, capsys):
    paths = write_corpus(tmp_path, 3, 3)
    bad = tmp_path / "in" / "bad.txt"
    bad.write_bytes(b"Fine line.\n\xff broken\n")
    results = tag_into_folder(tagger, [tmp_path / "in", tmp_path / "missing.txt"],
                              tmp_path / "out", output_format="conllu")
    status = {Path(r.source).name: (r.status, r.error) for r in results}
    assert status["bad.txt"] == ("failed", f"{bad}:2: not valid utf-8: byte 0xff at byte 1 of "
                                 "the line; use --encoding if the file is in another encoding")
    assert status["missing.txt"] == ("failed", f"{tmp_path / 'missing.txt'}: no such file")
    # nothing half-written: no output for the failures, no temporary file left
    assert sorted(os.listdir(tmp_path / "out")) == [p.name for p in paths]
    for p in paths:  # each output is exactly what `seqtag tag -i FILE --format conllu` prints
        result = CliRunner().invoke(cli.app, ["tag", "-i", str(p), "--format", "conllu"])
        assert result.exit_code == 0
        assert (tmp_path / "out" / p.name).read_text(encoding="utf-8") == result.stdout
    done = [r for r in results if r.status == "done"]
    assert sum(r.tokens for r in done) == sum(
        len(s) for p in paths for s in tagger.tag(p.read_text(encoding="utf-8")))


def test_cli_output_dir_skip_existing_and_exit_status(tmp_path):
    paths = write_corpus(tmp_path, 3, 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / paths[0].name).write_text("kept\n")
    (tmp_path / "in" / "bad.txt").write_bytes(b"\xff\n")
    runner = CliRunner()
    result = runner.invoke(cli.app, ["tag", "-i", str(tmp_path / "in"), "--output-dir",
                                     str(out), "--skip-existing"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        f"seqtag: error: {tmp_path / 'in' / 'bad.txt'}:1: not valid utf-8: byte 0xff at byte "
        "1 of the line; use --encoding if the file is in another encoding",
        "seqtag: error: 1 file of 4 could not be tagged (above); the others were written"]
    assert (out / paths[0].name).read_text() == "kept\n"
    for p in paths[1:]:
        expected = runner.invoke(cli.app, ["tag", "-i", str(p)]).stdout
        assert (out / p.name).read_text(encoding="utf-8") == expected
    result = runner.invoke(cli.app, ["tag", "-i", str(paths[1]), "--output-dir", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    result = runner.invoke(cli.app, ["tag", "--output-dir", str(out), "A dog."])
    assert result.exit_code == 2
    assert "--output-dir tags files given with --input" in result.stderr
    result = runner.invoke(cli.app, ["tag", "-i", str(paths[1]), "--skip-existing"])
    assert result.exit_code == 2
    assert "--skip-existing and --scheduler go with --output-dir" in result.stderr


def test_an_input_is_never_its_own_output(tmp_path):
    """An output folder that holds the inputs would replace them: refused before any file
    is written (also through a link to the file), and a rerun cannot "skip" them."""
    paths = write_corpus(tmp_path, 2, 1)
    before = read_folder(tmp_path / "in")
    runner = CliRunner()
    for args in (["-i", str(paths[0])], ["-i", str(tmp_path / "in")],
                 ["-i", str(tmp_path / "in"), "--skip-existing"]):
        result = runner.invoke(cli.app, ["tag", *args, "--output-dir", str(tmp_path / "in")])
        assert result.exit_code == 1, result.output
        assert result.stderr == (f"seqtag: error: {paths[0]}: its output "
                                 f"{tmp_path / 'in' / paths[0].name} would replace it; choose "
                                 "another output folder\n")
    (tmp_path / "link").mkdir()
    os.symlink(paths[1], tmp_path / "link" / "other.txt")
    with pytest.raises(Exception, match="other.txt would replace it"):
        output_plan([tmp_path / "link" / "other.txt"], tmp_path / "link")
    os.symlink(paths[1], tmp_path / "in-link.txt")
    os.makedirs(tmp_path / "o2")
    os.symlink(paths[1], tmp_path / "o2" / "in-link.txt")
    with pytest.raises(Exception, match="would replace it"):  # the output a link to the input
        output_plan([tmp_path / "in-link.txt"], tmp_path / "o2")
    assert read_folder(tmp_path / "in") == before


def test_folder_options_columns_and_checks(tmp_path, tagger):
    """--columns shows the same columns as on standard output; options that do not go with
    the model are one error before any file; an empty folder is an error as a pattern that
    matches nothing is; a link to nothing in a folder is reported by name."""
    paths = write_corpus(tmp_path, 2, 1)
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(cli.app, ["tag", "-i", str(tmp_path / "in"), "--output-dir", str(out),
                                     "--columns", "upos,lemma"])
    assert result.exit_code == 0, result.output
    for p in paths:
        expected = runner.invoke(cli.app, ["tag", "-i", str(p), "--columns", "upos,lemma"])
        assert (out / p.name).read_text(encoding="utf-8") == expected.stdout
        assert "/" in expected.stdout.split()[0][expected.stdout.split()[0].index("/") + 1:]
    result = runner.invoke(cli.app, ["tag", "-i", str(tmp_path / "in"), "--output-dir",
                                     str(tmp_path / "o3"), "--span-scheme", "IOB2"])
    assert result.exit_code == 1
    assert result.stderr == ("seqtag: error: --span-scheme IOB2: this model's tags are not "
                             "span tags (O, B-X, I-X, ...)\n")
    assert not (tmp_path / "o3").exists() or not os.listdir(tmp_path / "o3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="empty: no file to tag in this folder"):
        output_plan([tmp_path / "empty"], tmp_path / "o4")
    os.symlink(tmp_path / "gone.txt", tmp_path / "in" / "broken.txt")
    results = tag_into_folder(tagger, [tmp_path / "in"], tmp_path / "o5")
    status = {Path(r.source).name: (r.status, r.error) for r in results}
    assert status["broken.txt"] == ("failed", f"{tmp_path / 'in' / 'broken.txt'}: no such file")
    assert sorted(os.listdir(tmp_path / "o5")) == [p.name for p in paths]


def test_temporaries_of_a_killed_run_are_removed(tmp_path, tagger):
    paths = write_corpus(tmp_path, 2, 1)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".{paths[0].name}.abc123.tmp"  # what a killed run leaves (atomic_output)
    stale.write_text("half")
    results = tag_into_folder(tagger, [tmp_path / "in"], out)
    assert [r.status for r in results] == ["done", "done"]
    assert sorted(os.listdir(out)) == [p.name for p in paths]


# ---------------------------------------------------------------- Dask


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed", reason="seqtag.dask needs dask and distributed: "
                        "pip install 'seqtag[dask]'")
    from seqtag.dask import local_cluster
    def environment():  # but for the variable pytest sets for each test it runs
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}

    before = environment()
    handler = signal.getsignal(signal.SIGINT)
    with local_cluster(2) as client:
        # the workers ignore Ctrl-C (the command closes them); this process does not
        assert signal.getsignal(signal.SIGINT) is handler
        assert set(client.run(lambda: int(signal.getsignal(signal.SIGINT))).values()) == {
            int(signal.SIG_IGN)}
        # the nannies set OPENBLAS_NUM_THREADS=1 & co. here for their workers (a BLAS
        # loaded here later, SciPy's by pandas, would start with one thread), and
        # __DASK_PARENT_PID: none of it stays
        assert environment() == before
        yield client
    assert environment() == before


def test_a_tls_address_without_its_settings_is_one_error():
    pytest.importorskip("distributed", reason="seqtag.dask needs dask and distributed: "
                        "pip install 'seqtag[dask]'")
    from seqtag.dask import cluster
    from seqtag.errors import SeqtagError
    from distributed import Client

    def clients():
        return {id(o) for o in gc.get_objects() if type(o) is Client}  # (no attribute asked)

    before = clients()
    with pytest.raises(SeqtagError, match=r"^--scheduler tls://127.0.0.1:1: cannot connect: "):
        with cluster("tls://127.0.0.1:1"):
            pass
    # and the half-made client is gone already: left to the garbage collector, its
    # close() hung the next LocalCluster's start (distributed's loop lock)
    assert clients() <= before


@pytest.fixture(scope="module")
def workers(client):
    import seqtag.dask
    return seqtag.dask.register_tagger(client)


def test_each_worker_loads_the_model_once_with_its_share_of_the_cores(client, workers):
    from seqtag import runtime

    def loaded(dask_worker, name=workers.name):
        tagger = dask_worker.plugins[name].tagger
        return id(tagger), tagger.network.rnn.threads

    first, again = client.run(loaded), client.run(loaded)
    assert len(first) == 2 and first == again  # the same tagger object, not reloaded
    # 2 single-threaded workers on this host: each gets cores // 2 seqtag threads (1..2)
    assert {threads for _, threads in first.values()} == {runtime.threads_per_caller(2)}


def test_a_broken_model_is_named_and_not_left_registered(tmp_path, client, workers):
    import seqtag.dask
    from seqtag.errors import ModelError

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=f"^{bad} is not a seqtag model"):
        seqtag.dask.register_tagger(client, bad)
    # the scheduler would hand it to every worker that (re)starts: it must be gone
    registered = client.run_on_scheduler(lambda dask_scheduler: sorted(
        n for n in dask_scheduler.worker_plugins if n.startswith("seqtag-")))
    assert registered == [workers.name]


def test_cli_a_broken_model_is_one_line_before_any_worker_loads_it(tmp_path, client):
    write_corpus(tmp_path, 1, 1)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    result = CliRunner().invoke(cli.app, ["tag", "-i", str(tmp_path / "in"), "--output-dir",
                                          str(tmp_path / "out"), "-m", str(bad),
                                          "--scheduler", client.scheduler.address])
    assert result.exit_code == 1
    assert result.stderr == f"seqtag: error: {bad} is not a seqtag model (not an .npz archive)\n"
    assert client.run(lambda dask_worker: sorted(dask_worker.plugins)) == plugins


def test_bag_of_texts_and_token_lists_equals_tagging_in_process(workers, tagger):
    import dask.bag as db
    import seqtag.dask

    rng = random.Random(1)
    items = [paragraph(rng, 3) for _ in range(30)] + [["Book", "that", "flight"], "", ("A",)]
    rng.shuffle(items)
    bag = db.from_sequence(items, npartitions=4)
    assert seqtag.dask.tag_bag(bag, workers).compute() == [tagger.tag(x) for x in items]


def test_dataframe_column_equals_tagging_in_process(workers, tagger):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    import seqtag.dask

    rng = random.Random(2)
    texts = [paragraph(rng, 2) for _ in range(20)]
    frame = dd.from_pandas(pd.DataFrame({"text": texts, "n": range(20)}), npartitions=3)
    tagged = seqtag.dask.tag_column(frame, "text", workers).compute()
    assert list(tagged.index) == list(range(20))
    assert list(tagged) == [tagger.tag(t) for t in texts]


def test_folder_of_files_equals_one_process_and_failures_are_named(tmp_path, workers, tagger):
    import seqtag.dask

    paths = write_corpus(tmp_path, 6, 4)
    (tmp_path / "in" / "bad.txt").write_bytes(b"Ok.\n\xfe\n")
    tag_into_folder(tagger, [tmp_path / "in"], tmp_path / "one", output_format="json")
    done = []
    results = seqtag.dask.tag_files(workers, [tmp_path / "in"], tmp_path / "dask",
                                    output_format="json", progress=done.append)
    assert sorted(r.source for r in done) == sorted(r.source for r in results)
    assert [(Path(r.source).name, r.status) for r in results] == (
        [("bad.txt", "failed")] + [(p.name, "done") for p in paths])
    assert results[0].error.endswith("bad.txt:2: not valid utf-8: byte 0xfe at byte 1 of the "
                                     "line; use --encoding if the file is in another encoding")
    assert read_folder(tmp_path / "dask") == read_folder(tmp_path / "one")
    assert len(read_folder(tmp_path / "dask")) == 6


def test_cli_failures_read_the_same_on_the_cluster(tmp_path, client, monkeypatch):
    """With --scheduler, failed files are named as given (not as absolute paths) and in
    the files' order (not the order the workers finished them): the same lines as one
    process prints."""
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, 4, 3)
    for name in ("a_bad.txt", "z_bad.txt"):
        (tmp_path / "in" / name).write_bytes(b"Ok.\n\xfe\n")
    runner = CliRunner()
    one = runner.invoke(cli.app, ["tag", "-i", "in", "--output-dir", "one"])
    spread = runner.invoke(cli.app, ["tag", "-i", "in", "--output-dir", "spread",
                                     "--scheduler", client.scheduler.address])
    assert one.exit_code == spread.exit_code == 1
    assert one.stderr.startswith("seqtag: error: in/a_bad.txt:2: not valid utf-8")
    assert spread.stderr == one.stderr
    assert read_folder(tmp_path / "spread") == read_folder(tmp_path / "one")


def test_skip_existing_on_the_cluster(tmp_path, workers):
    import seqtag.dask

    paths = write_corpus(tmp_path, 3, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / paths[1].name).write_text("kept\n")
    results = seqtag.dask.tag_files(workers, paths, out, skip_existing=True)
    assert [r.status for r in results] == ["done", "skipped", "done"]
    assert (out / paths[1].name).read_text() == "kept\n"


def test_a_worker_killed_mid_run_still_gives_every_file_complete(tmp_path, client, workers,
                                                                   tagger):
    import seqtag.dask

    paths = write_corpus(tmp_path, 8, 25, seed=3)
    tag_into_folder(tagger, paths, tmp_path / "one")
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(result):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    results = seqtag.dask.tag_files(workers, paths, tmp_path / "dask",
                                    progress=kill_a_busy_worker)
    assert killed, "no worker was busy after the first file: nothing was killed"
    assert [r.status for r in results] == ["done"] * len(paths)
    assert read_folder(tmp_path / "dask") == read_folder(tmp_path / "one")  # no .tmp left
    deadline = time.monotonic() + 60  # the nanny restarts the worker, which loads the model
    while len(client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)


def test_cli_scheduler_spreads_files_over_a_running_cluster(tmp_path, client):
    paths = write_corpus(tmp_path, 3, 2)
    address = client.scheduler.address
    plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    runner = CliRunner()
    result = runner.invoke(cli.app, ["tag", "-i", str(tmp_path / "in"), "--output-dir",
                                     str(tmp_path / "out"), "--scheduler", address,
                                     "--format", "tsv"])
    assert result.exit_code == 0, result.stderr
    for p in paths:
        expected = runner.invoke(cli.app, ["tag", "-i", str(p), "--format", "tsv"]).stdout
        assert (tmp_path / "out" / p.name).read_text(encoding="utf-8") == expected
    # the command's model is not left loaded on the shared cluster's workers
    assert client.run(lambda dask_worker: sorted(dask_worker.plugins)) == plugins
