"""Joint training epochs on EWT (every column, the default network), dev scoring included:
each epoch's CPU time (every thread of the process) and wall time, its dev score and loss
(the same run gives the same figures to the last digit whatever the speed work).

    python bench/joint_epochs.py [--epochs 2]

For a before/after comparison run it alternately on the two trees, on the same machine
state (the CPU time is the steadier figure on a shared machine).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line  # noqa: E402

from seqtag import Tagger  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print(machine_line())
    train = read_corpus(ewt_path("train"), require_tags=False)
    dev = read_corpus(ewt_path("dev"), require_tags=False)
    last = [time.process_time()]

    def progress(event):
        if event["type"] == "epoch":
            now = time.process_time()
            print(f"epoch {event['epoch']}: cpu {now - last[0]:.1f} s, wall "
                  f"{event['seconds']:.1f} s, dev {event['dev_acc']!r}, loss {event['loss']!r}",
                  flush=True)
            last[0] = now

    start, wall = time.process_time(), time.perf_counter()
    Tagger.train(train, dev, columns="upos,xpos,feats,lemma", epochs=args.epochs,
                 progress=progress)
    print(f"whole run (reading the corpus aside): cpu {time.process_time() - start:.1f} s, "
          f"wall {time.perf_counter() - wall:.1f} s")


if __name__ == "__main__":
    main()
