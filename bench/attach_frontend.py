"""Give a tagger a learned raw-text front end: train one on a CoNLL-U file with `# text`
lines and write the tagger with it attached (one model file).

    python bench/attach_frontend.py -o en_ewt_upos+fe.npz
        [--model BASE] [--train EWT-TRAIN] [--dev EWT-DEV] [--cache FE.npz] [--threads 2]
        [--frontend-from MODEL [--retune | --word-shapes]] [--seed N]
        [--option NAME=VALUE ...]

The tagger's weights are not touched: this is how a model trained before the front end
existed (the bundled one) gets one without retraining.  With --cache PATH the trained
front end is also written there alone, and reused on the next run if PATH exists.
--frontend-from MODEL takes the learned front end of another model file as it is (how the
bundled model keeps the front end chosen on dev when its tagger is retrained).
--retune learns again what the front end has after its model (chunk lexicon, shapes) from
--train and chooses on --dev how it uses them and its biases (what a front end trained
before those existed needs to use them).  --word-shapes only learns the shapes with their
first word ("anti-a" whole, "self-a" cut) and with their last ("a/c" whole) from --train
and chooses on --dev which to use, the front end's other choices kept (how the bundled
model got them).
--seed and --option (a train_frontend option of seqtag.segment.DEFAULTS, e.g. hidden=64;
repeatable) change how a new front end is learned.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path  # noqa: E402


def training_options(pairs):
    """{name: value} of NAME=VALUE strings, each value of its default's type."""
    from seqtag.segment import DEFAULTS
    options = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in DEFAULTS:
            raise SystemExit(f"unknown front end option {name!r}: one of {', '.join(DEFAULTS)}")
        options[name] = type(DEFAULTS[name])(value)
    return options


def record_dev(frontend, record, dev):
    """The record's dev file and scores (as seqtag.tagger.learn_frontend writes them)
    brought up to date with the front end's choices."""
    from seqtag.segment import dev_scores
    record.update(dev_file=str(dev), dev={
        k: round(float(v), 6) for k, v in dev_scores(frontend, dev).items()})


def retune(frontend, record, train, dev):
    """tune_on_dev, the record's dev scores and files brought up to date."""
    from seqtag.segment import tune_on_dev
    tune_on_dev(frontend, train, dev)
    record.update(file=str(train))
    record_dev(frontend, record, dev)
    print(f"retuned: repeated symbols whole {frontend.repeats_whole}, lexicon "
          f"{frontend.use_lexicon}, {len(frontend.shapes)} shapes, "
          f"{len(frontend.letter_shapes)} shapes with letters, "
          f"{len(frontend.prefix_shapes)} with their first word, "
          f"{len(frontend.suffix_shapes)} with their last, sentence "
          f"bias {frontend.sentence_bias:g}, multiword bias {frontend.multiword_bias:g}, word "
          f"model weight {frontend.word_weight:g}, bias {frontend.word_bias:g}, multiword context "
          f"model weight {frontend.context_weight:g}, bias {frontend.context_bias:g}")


def add_word_shapes(frontend, record, train, dev):
    """tune_word_shapes, the record's dev scores brought up to date."""
    from seqtag.segment import tune_word_shapes
    tune_word_shapes(frontend, train, dev)
    record_dev(frontend, record, dev)
    print(f"{len(frontend.prefix_shapes)} shapes with their first word, "
          f"{len(frontend.suffix_shapes)} with their last")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="tagger (default: the bundled one)")
    parser.add_argument("--train", default=str(ewt_path("train")))
    parser.add_argument("--dev", default=str(ewt_path("dev")))
    parser.add_argument("--cache", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frontend-from", default=None,
                        help="take the front end of this model file instead of learning one")
    parser.add_argument("--retune", action="store_true",
                        help="with --frontend-from: its lexicons and biases learned again")
    parser.add_argument("--word-shapes", action="store_true",
                        help="with --frontend-from: its shapes with their first or last word "
                             "learned")
    parser.add_argument("--float16", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="of a new front end")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a front end training option (seqtag.segment.DEFAULTS)")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    if (args.retune or args.word_shapes) and not args.frontend_from:
        parser.error("--retune and --word-shapes need --frontend-from")
    if args.retune and args.word_shapes:
        parser.error("--retune learns the shapes with their first or last word too: not both")
    from seqtag import Tagger, modelfile
    from seqtag.segment import LearnedFrontEnd
    from seqtag.tagger import learn_frontend

    tagger = Tagger.load(args.model)
    if args.frontend_from:
        donor = Tagger.load(args.frontend_from)
        if donor.frontend.kind != "learned":
            raise SystemExit(f"{args.frontend_from} has no learned front end")
        frontend, record = donor.frontend, dict(donor.meta["frontend_training"])
        print(f"front end: {args.frontend_from}'s")
        if args.retune:
            retune(frontend, record, args.train, args.dev)
        elif args.word_shapes:
            add_word_shapes(frontend, record, args.train, args.dev)
    elif args.cache and os.path.exists(args.cache):
        arrays, meta = modelfile.load_model(args.cache)
        frontend, record = LearnedFrontEnd.from_arrays(arrays, meta["frontend"]), meta["record"]
        print(f"front end: {args.cache} (reused)")
    else:
        start = time.perf_counter()
        frontend, record = learn_frontend(
            args.train, args.dev, threads=args.threads, seed=args.seed,
            options=training_options(args.option),
            progress=lambda r: print({k: round(v, 4) if isinstance(v, float) else v
                                      for k, v in r.items()}, flush=True))
        print(f"front end trained in {time.perf_counter() - start:.0f} s")
        if args.cache:
            arrays, meta = frontend.to_arrays()
            modelfile.save_model(args.cache, arrays, {"frontend": meta, "record": record})
    tagger.attach_frontend(frontend, record)
    tagger.save(args.output, float16=args.float16)
    print(f"{args.output}: {os.path.getsize(args.output) / 1e6:.2f} MB; "
          f"front end dev scores {record.get('dev')}")


if __name__ == "__main__":
    main()
