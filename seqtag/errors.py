"""The one exception type seqtag raises for bad input a user can fix."""


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
