"""Draw the README's pictures with the commands the README shows (needs matplotlib:
pip install 'seqtag[plot]').

    python docs/make_pictures.py        # writes docs/training-curves.png, docs/confusions.png

training-curves.png: `seqtag info --plot`, the bundled model's recorded training history.
confusions.png: `seqtag evaluate --plot` of the bundled model on UD English EWT test, found
at $SEQTAG_SHARED/data/ud-english-ewt or ../shared/data/ud-english-ewt (skipped, saying so,
where it is absent).
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def seqtag(*args):
    command = [sys.executable, "-m", "seqtag", *map(str, args)]
    print("$ seqtag " + " ".join(map(str, args)), flush=True)
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def main():
    seqtag("info", "--plot", DOCS / "training-curves.png")
    shared = Path(os.environ.get("SEQTAG_SHARED") or REPO.parent / "shared")
    test = shared / "data" / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    if not test.is_file():
        print(f"skipping confusions.png: UD English EWT test not found at {test}")
        return
    seqtag("evaluate", REPO / "seqtag" / "models" / "en_ewt_upos.npz", test,
           "--plot", DOCS / "confusions.png")


if __name__ == "__main__":
    main()
