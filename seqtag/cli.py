"""The `seqtag` command: train, tag, evaluate and describe part-of-speech models.

Each command parses its options, calls the library and prints; numpy and the
tagger are imported inside the commands so `seqtag --help` and `seqtag tag`
start quickly (a plain `seqtag tag TEXT...`, without options, does not come here:
seqtag.console tags it without importing typer).  The options of the network, of training and of tagging are not
written here: they are generated from seqtag.config (name, help, shown default,
choices), which also parses and checks their values.  Errors a user can fix
(SeqtagError) print one line, ``seqtag: error: <message>``, and exit with status 1;
a bad option value (ConfigError) names its flag and exits with status 2, as any
usage error.  ``seqtag --verbose`` or SEQTAG_DEBUG=1 adds the traceback.  Ctrl-C
exits with status 130.
"""

import enum
import functools
import inspect
import io
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from . import __version__
from .config import NetworkConfig, TaggingConfig, TrainingConfig, flag
from .errors import ConfigError, SeqtagError, debugging, error_line, interrupted_line


class CorpusFormat(str, enum.Enum):
    auto = "auto"
    conllu = "conllu"
    tsv = "tsv"
    slash = "slash"
    iob2 = "iob2"
    conll = "conll"
    columns = "columns"


class InputFormat(str, enum.Enum):
    auto = "auto"
    text = "text"
    lines = "lines"
    tokens = "tokens"
    conllu = "conllu"


class OutputFormat(str, enum.Enum):
    text = "text"
    tsv = "tsv"
    conllu = "conllu"
    json = "json"


TAG_COLUMN_HELP = ("CoNLL-U column to {} (upos or xpos), or the number of the tag column "
                   "of a columns file (with --word-column).")
WORD_COLUMN_HELP = "The number of the word column of a columns file (default 1)."


def _value(choice):
    """An enum option's string, None for None and for "auto"."""
    return None if choice is None or choice.value == "auto" else choice.value


class _PlainParams:
    """Gives a command's parameters, and its help option, plain conversions (_plain_coercion)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _plain_coercion(self.params)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        _plain_coercion([option] if option is not None else [])
        return option


class _Group(_PlainParams, TyperGroup):
    """Turns SeqtagError and MemoryError into one line on stderr (exit 1; a bad option
    value: exit 2, as any usage error) and Ctrl-C into exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SeqtagError as e:
            if ctx.params.get("verbose") or debugging():
                traceback.print_exc()
            status, message = 1, str(e)
            if isinstance(e, ConfigError) and e.problem is not None:
                status, message = 2, f"{flag(e.option)} {e.problem}"
            typer.echo(error_line(message), err=True)
            raise typer.Exit(status) from None
        except MemoryError as e:  # a network far too big for the machine (--hidden 10^8)
            if ctx.params.get("verbose") or debugging():
                traceback.print_exc()
            typer.echo(error_line(f"not enough memory{': ' + str(e) if str(e) else ''}"),
                       err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _say_interrupted("interrupted")
            raise typer.Exit(130) from None


class _Command(_PlainParams, TyperCommand):
    """A command whose config options are listed under their own headings in --help, and
    whose parameters, all strings, paths, choices and flags, skip typer's pydantic layer."""

    def format_options(self, ctx, formatter):
        sections = getattr(self.callback, "option_sections", {})
        args, groups = [], {"Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append(record)
            else:
                groups.setdefault(sections.get(param.name, "Options"), []).append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        for heading, records in groups.items():
            if records:
                with formatter.section(heading):
                    formatter.write_dl(records)


def _plain_coercion(params):
    """From 0.25 typer converts every parameter (given or not) through a pydantic
    TypeAdapter, which costs the import of pydantic on every call: +70 ms or more on each
    `seqtag tag`.  Our parameters need no such thing: strings stay strings (seqtag.config
    parses the option values), paths become Path, choices their enum, flags bools.  So
    each one gets a plain conversion in the slot typer fills lazily; a typer without that
    slot (before 0.25) converts through click, which is cheap already.  If a later typer
    renames the slot, this does nothing and the commands work as before, only slower
    (tests/test_cli.py checks that tagging imports no pydantic)."""
    try:
        from typer._coercion import RuntimeParam
    except ImportError:
        return
    for param in params:
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        plain = annotation in (str, Path, bool, List[str]) or (
            isinstance(annotation, type) and issubclass(annotation, enum.Enum))
        if plain and getattr(param, "_runtime_param", False) is None:
            param._runtime_param = _plain_runtime_param(RuntimeParam)(
                parameter_info=param.type_descriptor.parameter_info, annotation=annotation)


@functools.lru_cache(maxsize=None)
def _plain_runtime_param(base):
    class PlainRuntimeParam(base):
        def _coerce_value(self, value, param, ctx):
            kind = self.annotation
            if kind == List[str]:
                return [str(v) for v in value]
            try:
                return kind(value)  # str, Path, bool or an enum
            except ValueError:  # not one of the enum's: as click words it
                choices = ", ".join(repr(c.value) for c in kind)
                raise typer.BadParameter(f"{value!r} is not one of {choices}.", ctx=ctx,
                                         param=param) from None

    return PlainRuntimeParam


def _config_options(*groups):
    """Give the decorated command one option per field of each (config class, heading[,
    names]) in groups: --word-dim for word_dim, its help, its default as shown, its choices.
    The command receives `options`, {name: value} of those given on the command line,
    parsed and checked by seqtag.config (ConfigError: exit 2 naming the flag)."""
    table = {}
    for config_class, heading, *names in groups:
        for name, opt in config_class.options().items():
            if not names or name in names[0]:
                table.setdefault(name, (opt, heading))

    def decorate(command):
        signature = inspect.signature(command)
        params = [p for p in signature.parameters.values() if p.name != "options"]
        for name, (opt, _) in table.items():
            shown = opt.shown_default
            if opt.kind is bool:  # a switch: --freeze-embeddings, given or not
                info = typer.Option(opt.flag, help=opt.help, show_default=False)
                annotation = Annotated[Optional[bool], info]
            else:
                info = typer.Option(opt.flag, metavar=opt.metavar, help=opt.help,
                                    show_default=shown if shown is not None else False)
                annotation = Annotated[Optional[str], info]
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=annotation))

        @functools.wraps(command)
        def with_options(**kwargs):
            # a switch left off is not given (the run's own value stands, as on --resume)
            given = {name: kwargs.pop(name) or None if table[name][0].kind is bool
                     else kwargs.pop(name) for name in table}
            options = {name: table[name][0].parse(text) for name, text in given.items()
                       if text is not None}
            return command(**kwargs, options=options)

        with_options.__signature__ = signature.replace(parameters=params)
        with_options.__annotations__ = {p.name: p.annotation for p in params}
        with_options.option_sections = {name: heading for name, (_, heading) in table.items()}
        return with_options

    return decorate


app = typer.Typer(
    cls=_Group,
    name="seqtag",
    help="A fast part-of-speech tagger: train models, tag text, evaluate, describe models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool):
    if value:
        from .runtime import build_description, compute_description
        typer.echo(f"seqtag {__version__}")
        typer.echo(f"compute: {compute_description()}")
        typer.echo(f"build: {build_description()}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="Show the traceback of errors (also SEQTAG_DEBUG=1).")] = False,
):
    """seqtag: a fast part-of-speech tagger."""


# ---------------------------------------------------------------- train


def _flags(names):
    """"--epochs, --patience and --threads" for ("epochs", "patience", "threads")."""
    flags = [flag(name) for name in names]
    return ", ".join(flags[:-1]) + " and " + flags[-1] if len(flags) > 1 else "".join(flags)


class _TrainingReport:
    """Progress events of Tagger.train: a one-line bar within an epoch (on a terminal),
    one summary line per epoch."""

    WIDTH = 24

    def __init__(self, bar, dev_fraction, plot=None, title="", training=None):
        self.bar = bar
        self.dev_fraction = dev_fraction
        self.last_draw = 0.0
        self.plot, self.title, self.training = plot, title, training

    def __call__(self, event):
        kind = event["type"]
        if kind == "corpus":
            typer.echo(f"read {event['sentences']:,} sentences ({event['tokens']:,} tokens) from "
                       f"{event['file']} ({event['format']})", err=True)
            if event["dev_file"] is not None:
                typer.echo(f"read {event['dev_sentences']:,} dev sentences from "
                           f"{event['dev_file']}", err=True)
            else:
                typer.echo(f"no --dev: holding out {self.dev_fraction * 100:g}% of them to "
                           "pick the best epoch", err=True)
        elif kind == "columns":
            skipped = (f"; skipping {', '.join(c.upper() for c in event['skipped'])} (all '_')"
                       if event["skipped"] else "")
            typer.echo(f"columns: learning {', '.join(c.upper() for c in event['learned'])}"
                       f"{skipped}", err=True)
        elif kind == "frontend":
            if not event["learned"]:
                typer.echo(f"front end: keeping the rules ({event['reason']})", err=True)
            else:
                dev = (f", {event['dev_file']} picking its epoch" if event["dev_file"] else
                       " (no dev file with '# text': its last epoch is kept)")
                typer.echo(f"front end: learning tokens, sentences and multiword tokens from "
                           f"the '# text' lines of {event['file']}{dev}", err=True)
        elif kind == "frontend_epoch":
            dev = "".join(f"  {name} {event['dev_' + name]:7.2%}"
                          for name in ("tokens", "sentences", "multiword")
                          if "dev_" + name in event)
            typer.echo(f"front end epoch {event['epoch']:3d}  loss {event['loss']:.4f}{dev}  "
                       f"{event['seconds']:6.1f}s", err=True)
        elif kind == "frontend_done":
            rebuilt = event["record"].get("rebuilt")
            if rebuilt:
                typer.echo(f"front end: {_plural(rebuilt, 'sentence')} of the corpus had no "
                           "'# text' or one that does not match its tokens: learned from the "
                           "text its tokens and SpaceAfter=No make", err=True)
            typer.echo(f"front end learned in {event['record']['seconds']:.0f}s; now the tagger",
                       err=True)
        elif kind == "batch":
            now = time.monotonic()
            done, total = event["tokens_done"], event["tokens_total"]
            if self.bar and (now - self.last_draw >= 0.1 or done >= total):
                self.last_draw = now
                fraction = done / max(total, 1)
                filled = int(fraction * self.WIDTH)
                sys.stderr.write(
                    f"\r\x1b[Kepoch {event['epoch']:3d} [{'#' * filled:.<{self.WIDTH}}] "
                    f"{fraction:4.0%}  {event['tokens_per_s']:,.0f} tokens/s  "
                    f"loss {event['loss']:.4f}")
                sys.stderr.flush()
        elif kind == "epoch":
            clear = "\r\x1b[K" if self.bar else ""
            f1 = "" if event.get("dev_f1") is None else f"  span F1 {event['dev_f1']:7.2%}"
            typer.echo(f"{clear}epoch {event['epoch']:3d}  loss {event['loss']:.4f}  "
                       f"train {event['train_acc']:7.2%}  dev {event['dev_acc']:7.2%}{f1}  "
                       f"{event['seconds']:6.1f}s{'  *' if event['best'] else ''}", err=True)
            if self.plot:
                from .plot import plot_training
                plot_training(event["history"], self.plot, title=self.title,
                              training=self.training)


@app.command(cls=_Command, no_args_is_help=True, short_help="Train a tagger on a tagged corpus.")
@_config_options((NetworkConfig, "Network options"), (TrainingConfig, "Training options"))
def train(
    corpus: Annotated[Path, typer.Argument(
        metavar="CORPUS",
        help="Tagged training corpus: CoNLL-U, word<TAB>tag lines, word/TAG sentences, "
             "CoNLL-2003 or Universal NER columns, or named columns.",
        show_default=False)],
    dev: Annotated[Optional[Path], typer.Option(
        metavar="DEV",
        help="Tagged dev corpus that picks the best epoch. Default: hold out "
             "--dev-fraction of CORPUS.", show_default=False)] = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", metavar="MODEL", help="Where to write the model.")] = Path("model.npz"),
    format: Annotated[CorpusFormat, typer.Option(
        help="Corpus format; auto detects it.")] = CorpusFormat.auto,
    tag_column: Annotated[str, typer.Option(
        help=TAG_COLUMN_HELP.format("learn"))] = "upos",
    word_column: Annotated[Optional[int], typer.Option(
        help=WORD_COLUMN_HELP, show_default=False)] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the input files.")] = "utf-8",
    float16: Annotated[Optional[bool], typer.Option(
        "--float16/--no-float16",
        help="Store the weights as float16 (half the file size). Default: no, or as the "
             "run resumed did.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress bar (epoch lines are still printed).")] = False,
    checkpoint: Annotated[Optional[Path], typer.Option(
        metavar="PATH", help="Where the whole state of the run is written after every epoch, "
        "for --resume.", show_default="MODEL.ckpt")] = None,
    resume: Annotated[Optional[Path], typer.Option(
        metavar="CHECKPOINT", help="Continue the run saved in CHECKPOINT (same corpus and "
        f"options; only {_flags(TrainingConfig.resumable())} may change).",
        show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option(
        metavar="PICTURE", help="Draw the training curves to PICTURE (.png, .svg or .pdf), "
        "redrawn after every epoch; needs matplotlib.", show_default=False)] = None,
    frontend: Annotated[Optional[bool], typer.Option(
        "--frontend/--no-frontend",
        help="Learn the raw-text front end (tokens, sentences, multiword tokens) from the "
             "corpus's '# text' lines (CoNLL-U only; other corpora keep the rules). "
             "Default: yes, or as the run resumed did.", show_default=False)] = None,
    options=None,
):
    """Train a tagger on CORPUS and write the model of its best dev epoch.

    A CoNLL-U corpus with '# text' lines also teaches the model its raw-text front end
    (learned first, in the same model file); other corpora keep the rule front end.
    The best model so far is written to MODEL after every epoch that improved it, and the
    state of the run to MODEL.ckpt, so a run that is killed loses at most one epoch and
    --resume continues it (learning the front end again: same corpus and seed, same
    front end).  Ctrl-C stops training and keeps the best epoch's model.
    """
    from .tagger import Tagger
    from .train import TrainingInterrupted

    from .stream import same_file

    if not output.name or output.is_dir():
        raise SeqtagError(f"--output {output}: give a file name for the model")
    checkpoint = checkpoint or output.with_name(output.name + ".ckpt")
    if checkpoint.resolve() == output.resolve():
        raise SeqtagError(f"--checkpoint {checkpoint} is the model file; give another path")
    outputs = [(output, "model"), (checkpoint, "checkpoint")] + (
        [(plot, "picture")] if plot else [])
    # what a run reads; the checkpoint it resumes is where it goes on writing its state
    inputs = [(corpus, "training corpus"), (dev, "dev corpus"),
              (options.get("embeddings"), "vectors file")]
    for k, (path, what) in enumerate(outputs):
        if not path.parent.is_dir():
            raise SeqtagError(f"cannot write {what} {path}: directory {path.parent} does not exist")
        if not os.access(path.parent, os.W_OK | os.X_OK):  # said now, not after the epochs
            raise SeqtagError(f"cannot write {what} {path}: directory {path.parent} is not "
                              "writable")
        others = inputs + outputs[:k] + (
            [(resume, "checkpoint resumed")] if what != "checkpoint" else [])
        for data, name in others:
            if data is not None and str(data) != "-" and same_file(str(path), str(data)):
                raise SeqtagError(f"the {what} {path} would replace the {name} {data}; "
                                  "give another path")
    if plot:
        from .plot import require_matplotlib
        require_matplotlib(plot)
    if resume:
        typer.echo(f"resuming the run saved in {resume}", err=True)
    if float16 is None:  # the checkpoint is read again by train_files, which names it
        from .train import resumed_flags
        float16 = bool(resume is not None and resumed_flags(resume).get("float16", False))
    report = _TrainingReport(bar=not quiet and sys.stderr.isatty(),
                             dev_fraction=options.get("dev_fraction", TrainingConfig.dev_fraction),
                             plot=plot, title=f"seqtag train: {output.name} on {corpus.name}",
                             training={"lr": options.get("lr"),
                                       "optimizer": options.get("optimizer", "adam")})
    saved = []  # epochs whose model was written to MODEL during training

    def save_best(best):
        _save(best, output, float16)
        saved.append(best.meta["scores"]["best_epoch"])

    try:
        tagger = Tagger.train_files(corpus, dev, format=_value(format),
                                    tag_column=tag_column, word_column=word_column,
                                    encoding=encoding,
                                    frontend=frontend, progress=report,
                                    command=shlex.join(sys.argv), checkpoint=checkpoint,
                                    resume=resume, on_best=save_best,
                                    flags={"float16": float16}, **options)
    except TrainingInterrupted as e:
        _save(e.tagger, output, float16)
        scores = e.tagger.meta["scores"]
        _say_interrupted(f"interrupted after {_plural(scores['epochs_run'], 'epoch')}; the model "
                         f"of epoch {scores['best_epoch']} (dev accuracy "
                         f"{scores['dev_accuracy']:.2%}) is in {output}; --resume {checkpoint} "
                         "continues the run")
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        _say_interrupted("interrupted before the first epoch finished; nothing was saved")
        raise typer.Exit(130) from None
    except SeqtagError as e:
        if not saved:
            raise
        # e.g. a NaN loss: the model written before it is good, and the user should know
        raise SeqtagError(f"{e}; the best model before that (epoch {saved[-1]}) is in "
                          f"{output}") from e
    _save(tagger, output, float16)
    scores = tagger.meta["scores"]
    f1 = ("" if scores.get("dev_span_f1") is None
          else f", span F1 {scores['dev_span_f1']:.2%}")
    typer.echo(f"model written to {output} (dev accuracy {scores['dev_accuracy']:.2%}{f1}, "
               f"epoch {scores['best_epoch']} of {scores['epochs_run']}; output layer "
               f"{tagger.output_layer()['kind']})")


def _save(tagger, output, float16):
    try:
        tagger.save(output, float16=float16)
    except ValueError as e:  # weights beyond the float16 range
        raise SeqtagError(str(e)) from None


def _say_interrupted(message):
    typer.echo(interrupted_line(message), err=True)


# ---------------------------------------------------------------- tag


@app.command(cls=_Command, short_help="Tag text, files or standard input.")
@_config_options((TaggingConfig, "Options"))
def tag(
    ctx: typer.Context,
    text: Annotated[Optional[List[str]], typer.Argument(
        metavar="TEXT",
        help="Raw text to tag, one paragraph per argument (split into sentences). Without "
             "TEXT or --input, standard input is read.", show_default=False)] = None,
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m", metavar="MODEL", help="Model file.",
        show_default="the bundled English model")] = None,
    input: Annotated[Optional[List[str]], typer.Option(
        "--input", "-i", metavar="FILE", show_default=False,
        help="File to tag, '-' for standard input; may be repeated.")] = None,
    input_format: Annotated[InputFormat, typer.Option(
        help="Input format: text (raw text: paragraphs end at blank lines, the model finds "
             "sentences and tokens), lines (raw text, one sentence per line), tokens (a "
             "token per line, blank line between sentences) or conllu; auto detects it "
             "(text unless the input looks like conllu or tokens).")] = InputFormat.auto,
    format: Annotated[OutputFormat, typer.Option(
        help="Output: word/TAG lines, word<TAB>TAG lines, CoNLL-U, or JSON lines.")
    ] = OutputFormat.text,
    encoding: Annotated[str, typer.Option(help="Text encoding of the input files.")] = "utf-8",
    output_dir: Annotated[Optional[Path], typer.Option(
        metavar="OUT", show_default=False,
        help="Write one output file per input (same base name) into folder OUT; inputs may "
             "be files, folders and glob patterns.")] = None,
    skip_existing: Annotated[bool, typer.Option(
        "--skip-existing", help="With --output-dir: leave outputs already there as they are "
        "(each is written atomically, so an existing one is complete).")] = False,
    scheduler: Annotated[Optional[str], typer.Option(
        metavar="ADDRESS", show_default=False,
        help="With --output-dir: spread the files over a Dask cluster, a running scheduler "
             "(tcp://host:8786) or local[:N] (N worker processes here; needs seqtag[dask]).")
    ] = None,
    options=None,
):
    """Tag raw text given as arguments, or files, or standard input; output streams."""
    settings = TaggingConfig(**options)
    if text and input:
        ctx.fail("give sentences as arguments or with --input, not both")
    if text and input_format not in (InputFormat.auto, InputFormat.text, InputFormat.lines):
        ctx.fail("text given as arguments is raw text (text or lines); --input-format "
                 "tokens and conllu are for --input")
    if settings.top_k and format is OutputFormat.conllu:
        ctx.fail("--top-k cannot be written as conllu; use text, tsv or json")
    if not text and not input and sys.stdin.isatty():
        ctx.fail("nothing to tag: give sentences as arguments, --input FILE, "
                               "or pipe text into seqtag tag")
    if (skip_existing or scheduler) and output_dir is None:
        ctx.fail("--skip-existing and --scheduler go with --output-dir")
    if output_dir is not None:
        if text or not input or "-" in input:
            ctx.fail("--output-dir tags files given with --input (not arguments or stdin)")
        _tag_into_folder(model, input, output_dir, skip_existing, scheduler, settings,
                         dict(input_format=_value(input_format), output_format=format.value,
                              top_k=settings.top_k, batch_size=settings.batch_size,
                              encoding=encoding, span_scheme=settings.span_scheme,
                              columns=settings.columns))
        return
    from .stream import CommandOutput, argument_sources, tag_files
    from .tagger import Tagger

    # without options, seqtag.console tags text arguments as this does (tag_arguments)
    tagger = Tagger.load(model, threads=settings.threads, memo_words=settings.memo_words)
    if text:  # each argument is a paragraph of raw text (its offsets count from its start)
        sources = argument_sources(text)
        if input_format is InputFormat.auto:
            input_format = InputFormat.text
    else:
        sources = input or ["-"]
    if not text:  # a bar for files only (one-shot tagging imports nothing for it)
        from .progress import TaggingProgress, wanted
        if wanted():  # on a terminal only
            with TaggingProgress(sources) as bar:
                tag_files(tagger, bar.wrap(), CommandOutput(sys.stdout), _value(input_format), format.value,
                          settings.top_k, settings.batch_size, encoding=encoding,
                          on_chunk=bar.chunk_done, span_scheme=settings.span_scheme,
                          columns=settings.columns)
            return
    tag_files(tagger, sources, CommandOutput(sys.stdout), _value(input_format), format.value,
              settings.top_k, settings.batch_size, encoding=encoding,
              span_scheme=settings.span_scheme, columns=settings.columns)


class _FilesReport:
    """Progress of tagging files into a folder: a one-line bar on a terminal (files and
    tokens done), then one line per failed file."""

    def __init__(self, plan):
        self.total, self.files, self.tokens, self.failed = len(plan), 0, 0, []
        self.rank = {source: k for k, (source, _) in enumerate(plan)}
        self.bar = sys.stderr.isatty()
        self.start = time.monotonic()

    def __call__(self, result):
        self.files += 1
        self.tokens += result.tokens
        if result.status == "failed":
            self.failed.append(result)
        if self.bar:
            rate = self.tokens / max(time.monotonic() - self.start, 1e-9)
            sys.stderr.write(f"\r\x1b[Kfiles {self.files}/{self.total}  tokens "
                             f"{self.tokens:,}  {rate:,.0f} tokens/s")
            sys.stderr.flush()

    def finish(self):
        if self.bar:
            sys.stderr.write("\n")
        # in the files' order, whatever order the workers finished them in
        for result in sorted(self.failed, key=lambda r: self.rank.get(r.source, 0)):
            typer.echo(error_line(result.error), err=True)
        if self.failed:
            raise SeqtagError(f"{_plural(len(self.failed), 'file')} of {self.total} could not "
                              "be tagged (above); the others were written")


def _tag_into_folder(model, inputs, output_dir, skip_existing, scheduler, settings, options):
    from .stream import output_plan, tag_into_folder

    report = _FilesReport(output_plan(inputs, output_dir))
    if scheduler is None:
        from .tagger import Tagger
        tagger = Tagger.load(model, threads=settings.threads, memo_words=settings.memo_words)
        tag_into_folder(tagger, inputs, output_dir, skip_existing=skip_existing,
                        progress=report, **options)
    else:
        import contextlib
        import uuid
        try:
            from . import dask as seqtag_dask
        except ImportError as e:
            raise SeqtagError(str(e)) from None
        with seqtag_dask.cluster(scheduler) as client:
            # a name of its own: unloaded at the end without touching another run's model
            workers = seqtag_dask.register_tagger(client, model, threads=settings.threads,
                                                  memo_words=settings.memo_words,
                                                  name=f"seqtag-cli-{uuid.uuid4().hex}")
            try:
                seqtag_dask.tag_files(workers, inputs, output_dir,
                                      skip_existing=skip_existing, progress=report, **options)
            finally:
                with contextlib.suppress(Exception):  # a cluster gone: nothing to unload
                    seqtag_dask.unregister_tagger(workers)
    report.finish()


# ---------------------------------------------------------------- evaluate


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _percent(value):
    return "-" if value is None else f"{value:.2%}"


@app.command(cls=_Command, no_args_is_help=True, short_help="Score a model on a tagged corpus.")
@_config_options((TaggingConfig, "Options", ("threads",)))
def evaluate(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file.", show_default=False)],
    gold: Annotated[Path, typer.Argument(
        metavar="GOLD",
        help="Tagged corpus to score the model on.", show_default=False)],
    format: Annotated[CorpusFormat, typer.Option(
        help="Corpus format; auto detects it.")] = CorpusFormat.auto,
    tag_column: Annotated[Optional[str], typer.Option(
        help=TAG_COLUMN_HELP.format("read the gold tags from"),
        show_default="the one the model was trained on")] = None,
    word_column: Annotated[Optional[int], typer.Option(
        help=WORD_COLUMN_HELP, show_default=False)] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the input files.")] = "utf-8",
    json_output: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        metavar="PICTURE", help="Draw the confusion matrix and per-tag F1 to PICTURE (.png, "
        ".svg or .pdf); needs matplotlib.", show_default=False)] = None,
    options=None,
):
    """Score MODEL on the gold tags of GOLD: accuracy, per-tag P/R/F1, confusions; span
    P/R/F1 per type (seqeval's default and strict modes) for a model of span tags; a model
    of several columns, on CoNLL-U, each column's accuracy, AllTags (UPOS, XPOS and FEATS
    all right) and lemmas, on words seen in training and unseen."""
    from .corpus import MODEL_COLUMNS, detect_format, read_corpus
    from .evaluate import detail_column
    from .stream import check_tag_column, model_tag_column
    from .tagger import Tagger

    if plot:
        from .plot import require_matplotlib
        require_matplotlib(plot)
    tagger = Tagger.load(model, threads=TaggingConfig(**options).threads)
    check_tag_column(tagger, tag_column, model)
    column = tag_column or model_tag_column(tagger)
    source: Any = gold
    if str(gold) == "-":  # read twice below (its format, then its sentences): kept whole
        source = io.BytesIO(getattr(sys.stdin, "buffer", sys.stdin).read())
        source.name = "<stdin>"
    # a model of several columns, or of LEMMA or FEATS alone, is scored on its columns
    columns = (len(tagger.columns) > 1 or column not in ("upos", "xpos")) \
        and tag_column is None and (
        _value(format) or detect_format(source, encoding=encoding)) == "conllu"
    if isinstance(source, io.BytesIO):
        source.seek(0)
    if columns:
        gold_sents = read_corpus(source, _value(format), encoding=encoding, require_tags=False)
    else:
        # a model of LEMMA or FEATS alone scored on a tagged file: its tags are those values
        gold_sents = read_corpus(source, _value(format),
                                 column if column in ("upos", "xpos") or column.isdigit()
                                 else "upos", encoding, word_column)
    # a numbered column of another format holds the model's tags: their detail, as None
    scores = tagger.evaluate(gold_sents, matrix=plot is not None,
                             column=tag_column if tag_column in MODEL_COLUMNS else None)
    if plot:
        from .plot import plot_evaluation
        plot_evaluation(scores.pop("confusion_matrix"), scores["per_tag"], plot,
                        spans=(scores.get("spans") or {}).get("default"),
                        title=f"{Path(tagger.meta['path']).name} on {gold.name}: accuracy "
                              f"{_percent(scores['accuracy'])} ({scores['tokens']:,} tokens)")
    if json_output:
        typer.echo(json.dumps(scores, indent=2))
        return
    if "columns" in scores:
        typer.echo(f"{'column':<9} {'accuracy':>8} {'seen':>8} {'unseen':>8}  "
                   f"({scores['tokens']:,} tokens; unseen: {scores['unseen_tokens']:,})")
        rows = list(scores["columns"].items())
        if scores["alltags"] is not None:
            rows.insert(len([c for c in scores["columns"] if c != "lemma"]),
                        ("AllTags", scores["alltags"]))
        for name, s in rows:
            typer.echo(f"{name.upper() if name != 'AllTags' else name:<9} "
                       f"{_percent(s['accuracy']):>8} {_percent(s['seen_accuracy']):>8} "
                       f"{_percent(s['unseen_accuracy']):>8}")
        if scores["skipped"]:
            typer.echo(f"not scored: {', '.join(c.upper() for c in scores['skipped'])} "
                       f"(all '_' in {gold})")
        shown = detail_column(tag_column, tagger.tag_column, scores["columns"])
        typer.echo(f"\n{shown.upper()}:")
    typer.echo(f"accuracy      {_percent(scores['accuracy']):>7}  ({scores['tokens']:,} tokens)")
    typer.echo(f"seen words    {_percent(scores['seen_accuracy']):>7}  "
               f"({scores['seen_tokens']:,} tokens)")
    typer.echo(f"unseen words  {_percent(scores['unseen_accuracy']):>7}  "
               f"({scores['unseen_tokens']:,} tokens)")
    typer.echo(f"\n{'tag':<8} {'precision':>9} {'recall':>8} {'f1':>8} {'support':>8}")
    for name, s in scores["per_tag"].items():
        typer.echo(f"{name:<8} {_percent(s['precision']):>9} {_percent(s['recall']):>8} "
                   f"{_percent(s['f1']):>8} {s['support']:>8,}")
    if scores["confusions"]:
        typer.echo("\nmost frequent confusions (gold -> predicted)")
        for c in scores["confusions"][:10]:
            typer.echo(f"  {c['gold'] + ' -> ' + c['predicted']:<20} {c['count']:>6,}")
    for mode, spans in (scores.get("spans") or {}).items():
        if spans is None:
            continue
        how = "seqeval default, conlleval" if mode == "default" else f"strict {spans['scheme']}"
        typer.echo(f"\nspans ({how})\n{'type':<8} {'precision':>9} {'recall':>8} {'f1':>8} "
                   f"{'support':>8}")
        rows = [*spans["per_type"].items(), ("micro", spans["micro"]),
                ("macro", spans["macro"])]
        for name, s in rows:
            typer.echo(f"{name:<8} {_percent(s['precision']):>9} {_percent(s['recall']):>8} "
                       f"{_percent(s['f1']):>8} {s['support']:>8,}")


# ---------------------------------------------------------------- info


@app.command(cls=_Command, short_help="Describe a model.")
def info(
    model: Annotated[Optional[Path], typer.Argument(
        metavar="MODEL", help="Model file.", show_default="the bundled English model")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the details as JSON.")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        metavar="PICTURE", help="Draw the training curves the model recorded to PICTURE "
        "(.png, .svg or .pdf); needs matplotlib.", show_default=False)] = None,
):
    """Describe a model: tagset, sizes, architecture, training corpus, scores."""
    from .tagger import Tagger

    if plot:
        from .plot import require_matplotlib
        require_matplotlib(plot)
    tagger = Tagger.load(model)
    d = tagger.info()
    if plot:
        from .plot import plot_training
        corpus_file = (d.get("corpus") or {}).get("file")
        plot_training(tagger.meta.get("history") or [], plot, training=d.get("training"),
                      title=f"{Path(d['path']).name}: trained on "
                            f"{Path(corpus_file).name if corpus_file else 'an unrecorded corpus'}")
    if json_output:
        typer.echo(json.dumps(d, indent=2))
        return
    net, vocab = d["network"], d["vocabulary"]
    corpus, scores = d.get("corpus") or {}, d.get("scores") or {}
    from .spans import tagset_scheme
    scheme = tagset_scheme(d["tagset"])
    # a span model's tags, or a one-column model of another format's, are no UPOS
    columns = (f"span tags ({scheme})" if scheme is not None
               else "tags" if corpus.get("format") not in (None, "conllu")
               and d["columns"] == ["upos"]
               else ", ".join(c.upper() for c in d["columns"]) + "".join(
                   f"; {c.upper()} {n:,} classes" if c != "lemma"
                   else f"; LEMMA {n:,} edit scripts"
                   for c, n in _head_sizes(d["heads"]).items() if len(d["columns"]) > 1))
    # a model of lemmas alone: its labels are edit scripts, not tags to list
    tagset = (f"{len(d['tagset'])} edit scripts (lemmas)" if d["columns"] == ["lemma"]
              else f"{len(d['tagset'])} tags: {' '.join(d['tagset'])}")
    lines = [
        ("model", d["path"]),
        ("columns", columns),
        ("tagset", tagset),
        ("vocabulary", f"{vocab['words']:,} words, {vocab['chars']:,} characters"),
        ("architecture", f"{net.get('cell')}, {_plural(net.get('layers'), 'layer')}, hidden "
                         f"{net.get('hidden')}, word dim {net.get('word_dim')}, char dim "
                         f"{net.get('char_dim')}, char hidden {net.get('char_hidden')}"),
        ("parameters", f"{d['parameters']:,}"),
        ("output layer", _output_line(d["output_layer"])),
    ]
    if corpus:
        dev = ("held out of the corpus" if corpus.get("dev_held_out")
               else f"from {corpus.get('dev_file') or '?'}")
        lines += [
            ("corpus", f"{corpus.get('file', '?')} ({_corpus_columns(corpus)})"),
            ("", f"{corpus.get('sentences', 0):,} sentences, {corpus.get('tokens', 0):,} "
                 f"tokens; dev: {corpus.get('dev_sentences', 0):,} sentences {dev}"),
        ]
        if corpus.get("command"):
            lines.append(("command", corpus["command"]))
    if d.get("training"):
        lines.append(("training", _schedule_line(d["training"], d.get("training_auto") or (),
                                                 corpus.get("sentences"))))
    if scores:
        interrupted = " (interrupted)" if scores.get("interrupted") else ""
        f1 = ("" if scores.get("dev_span_f1") is None
              else f", span F1 {_percent(scores.get('dev_span_f1'))}")
        lines.append(("scores", f"dev accuracy {_percent(scores.get('dev_accuracy'))}{f1} at "
                                f"epoch {scores.get('best_epoch')} of {scores.get('epochs_run')}"
                                f"{interrupted}, trained in {scores.get('train_seconds')}s"))
    vectors = d.get("embeddings")
    if vectors:
        lines.append(("vectors", f"{vectors.get('file')} ({vectors.get('format')}, dim "
                                 f"{vectors.get('dim')}): {vectors.get('vectors_kept', 0):,} of "
                                 f"{vectors.get('words_in_file', 0):,} kept, "
                                 f"{vectors.get('extra_words', 0):,} beyond the corpus"))
    lines.append(("front end", _frontend_line(d["frontend"])))
    lines += [
        ("created", d.get("created") or "?"),
        ("version", f"seqtag {d.get('seqtag_version') or '?'}, "
                    f"model format {d.get('format_version') or '?'}"),
    ]
    for key, value in lines:
        typer.echo(f"{key:<13} {value}")


def _schedule_line(training, auto, sentences):
    """"at most 171 epochs (auto: 70 steps an epoch), patience 34 (auto), learning rate cut
    after 11 epochs without progress (auto)": how long the run could go, and which values the
    corpus's size chose (seqtag.config.auto_schedule)."""
    def given(name, text):
        return text + (" (auto)" if name in auto else "")
    epochs = f"at most {training.get('epochs')} epochs"
    batch = training.get("batch_size")
    if "epochs" in auto and sentences and batch:
        epochs += f" (auto: {-(-int(sentences) // int(batch)):,} steps an epoch)"
    return ", ".join([epochs, given("patience", f"patience {training.get('patience')}"),
                      given("decay_patience", "learning rate cut after "
                            f"{training.get('decay_patience')} epochs without progress")])


def _corpus_columns(corpus):
    """"conllu, upos", "columns, word 2, tag 4", "iob2": the format and, where the tags
    come from a column the user chose, which."""
    fmt = corpus.get("format", "?")
    if fmt in ("iob2", "conll", "tsv", "slash"):
        return fmt
    if fmt == "columns":
        return f"columns, word {corpus.get('word_column') or 1}, tag {corpus.get('tag_column')}"
    return f"{fmt}, {corpus.get('tag_column', '?')}"


def _output_line(output):
    if output["kind"] != "crf":
        return "softmax (each token's most probable tag)"
    constrained = (f", decoding keeps spans well-formed in {output['constrained']}"
                   if output["constrained"] else "")
    return f"crf (linear-chain CRF: the best tag sequence by Viterbi{constrained})"
def _head_sizes(heads):
    """{column: labels} of a model's heads (FEATS split a head per feature: their sum)."""
    sizes = {}
    for head in heads:
        sizes[head["column"]] = sizes.get(head["column"], 0) + head["labels"]
    return sizes


def _frontend_line(fe):
    if fe["kind"] != "learned":
        return ("rules (seqtag.tokenize and a punctuation sentence rule: the model learned no "
                "front end)")
    line = (f"learned: character Bi{fe['cell'].upper()} (hidden {fe['hidden']}, "
            f"{fe['parameters']:,} parameters), {fe['multiword_forms']:,} multiword forms")
    training = fe.get("training") or {}
    dev = training.get("dev")
    if dev:
        line += (f"; dev F1 tokens {_percent(dev.get('tokens'))}, sentences "
                 f"{_percent(dev.get('sentences'))}, multiword {_percent(dev.get('multiword'))}"
                 f" ({training.get('dev_file')})")
    return line


def main(argv=None):
    """The command line, every command through typer (the `seqtag` console script,
    seqtag.console.main, comes here for all but a plain `seqtag tag TEXT...`)."""
    hook = sys.excepthook
    try:
        return app(args=argv, prog_name="seqtag")
    finally:  # typer installs its own hook: a host that calls main(argv) keeps its one
        sys.excepthook = hook


if __name__ == "__main__":
    main()
