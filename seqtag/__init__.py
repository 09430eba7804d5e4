"""seqtag: a part-of-speech tagger with a hand-written LSTM core.

Importing the package is cheap: the compiled core and the tagger load on first use.
"""

__version__ = "0.1.0"

__all__ = ["Tagger", "SeqtagError", "__version__"]

from typing import TYPE_CHECKING

from .errors import SeqtagError

if TYPE_CHECKING:  # type checkers see the class; at run time __getattr__ imports it late
    from .tagger import Tagger


def __getattr__(name):
    if name == "Tagger":
        from .tagger import Tagger

        return Tagger
    raise AttributeError(f"module 'seqtag' has no attribute {name!r}")
