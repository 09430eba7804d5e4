"""The tagging progress bar (seqtag.progress): drawn on a terminal only, counting the bytes
read without changing what is tagged."""

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from seqtag import Tagger
from seqtag.progress import TaggingProgress, wanted
from seqtag.stream import tag_files

REPO = Path(__file__).resolve().parents[1]
TEXT = "The dog barked at the mailman. It ran away!\n\nA second paragraph, tagged too.\n"


@pytest.fixture(scope="module")
def tagger():
    return Tagger.load(threads=1)


def test_the_bar_counts_every_byte_and_changes_no_output(tagger, tmp_path):
    files = []
    for k in range(3):
        files.append(tmp_path / f"in{k}.txt")
        files[-1].write_text(TEXT * (k + 1), encoding="utf-8")
    plain = io.StringIO()
    counts = tag_files(tagger, files, plain, None, "json")
    screen = io.StringIO()
    with TaggingProgress(files, stream=screen) as bar:
        counted = io.StringIO()
        assert tag_files(tagger, bar.wrap(), counted, None, "json", batch_size=2,
                         on_chunk=bar.chunk_done) == counts
    assert counted.getvalue() == plain.getvalue()
    task = bar.progress.tasks[0]
    assert bar.total == sum(f.stat().st_size for f in files)
    assert task.completed == bar.total and task.description == "file 3 of 3"
    assert task.fields["rate"].endswith(" tokens/s")


def test_errors_still_name_the_file_and_line(tagger, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nbad \xff byte\n")
    with TaggingProgress([bad, tmp_path / "missing.txt"], stream=io.StringIO()) as bar:
        assert bar.total is None  # a missing file has no size: no total
        with pytest.raises(Exception) as e:
            tag_files(tagger, bar.wrap(), io.StringIO(), "lines")
    assert str(e.value).startswith(f"{bad}:2: not valid utf-8: byte 0xff")


def test_only_a_terminal_gets_a_bar(tmp_path):
    assert not wanted(io.StringIO(), io.StringIO())
    source = tmp_path / "big.txt"
    source.write_text(TEXT * 400, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                       os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "seqtag", "tag", "-i", str(source), "--threads", "1"]
    piped = subprocess.run(command, capture_output=True, env=env, timeout=120)
    assert piped.returncode == 0 and piped.stderr == b""
    main, secondary = os.openpty()  # stderr on a terminal, stdout piped
    drawn = []

    def read_terminal():  # all along: a full terminal buffer would block the bar
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other end is closed: all read
                return
            if not chunk:
                return
            drawn.append(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        p = subprocess.run(command, stdout=subprocess.PIPE, stderr=secondary, env=env,
                           timeout=120)
    finally:
        os.close(secondary)
        reader.join(10)
        os.close(main)
    drawn = b"".join(drawn)
    assert p.returncode == 0
    assert p.stdout == piped.stdout  # the bar goes to stderr only
    assert b"tagging" in drawn and b"tokens/s" in drawn and b"kB" in drawn


def test_one_shot_tagging_imports_no_bar_and_no_extra():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                       os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "seqtag", "tag",
                        "The dog barked."], capture_output=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stdout == b"The/DET dog/NOUN barked/VERB ./PUNCT\n"
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.decode().splitlines()}
    # numpy.random and numpy.ma: ~30 ms of imports a loaded model does not need; typer
    # and seqtag.cli: a plain `seqtag tag TEXT` goes around them (seqtag.console)
    for module in ("seqtag.progress", "seqtag.plot", "seqtag.embeddings", "rich",
                   "matplotlib", "spacy", "nltk", "numpy.random", "numpy.ma", "seqtag.train",
                   "typer", "seqtag.cli"):
        assert module not in imported
    assert "seqtag.stream" in imported  # the list is the real one
