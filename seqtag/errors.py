"""The one exception type seqtag raises for bad input a user can fix, and the lines a
command prints for it and for Ctrl-C (seqtag.cli through typer, seqtag.console without)."""

import os
import sys


def error_line(message: str) -> str:
    """The one line an error a user can fix prints: its message on one line."""
    return "seqtag: error: " + " ".join(message.split())


def debugging() -> bool:
    """Whether errors show their traceback too (SEQTAG_DEBUG set, and not to 0)."""
    return os.environ.get("SEQTAG_DEBUG", "") not in ("", "0")


def interrupted_line(message: str = "interrupted") -> str:
    """The line Ctrl-C prints; on a terminal it starts a new line, ending a progress bar's."""
    return f"{chr(10) if sys.stderr.isatty() else ''}seqtag: {message}"


class SeqtagError(Exception):
    """A user error: bad file, bad option, bad model. The message is one line."""


class CorpusError(SeqtagError):
    """A corpus or input file that cannot be read; the message names file and line."""

    def __init__(self, message, path=None, line=None):
        self.path = path
        self.line = line
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class ModelError(SeqtagError):
    """A model file that is missing, broken, or not a seqtag model."""


class ConfigError(SeqtagError):
    """An option with a value it does not accept, or an unknown option.

    .option is the option's name; .problem what is wrong with its value ("must be a number
    > 0, got -1"), so the command line can name its flag instead: "--lr must be ...".
    """

    def __init__(self, option: str, problem: str | None = None, *,
                 message: str | None = None) -> None:
        self.option = option
        self.problem = problem
        super().__init__(message if message is not None else f"{option} {problem}")
