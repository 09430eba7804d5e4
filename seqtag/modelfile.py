"""Reading and writing seqtag model files.

A model is ONE ``.npz`` file (a zip of ``.npy`` members, readable by ``np.load``)
holding named numpy arrays -- the weights, LSTM tensors under torch-compatible
names such as ``tagger.weight_ih_l0`` -- plus JSON metadata stored as a uint8
array under the reserved name ``__meta__.json``.  Nothing in a model is ever
unpickled: arrays are written with ``allow_pickle=False``, object arrays are
refused when saving, and loading uses ``allow_pickle=False``.

Writing is atomic (see :func:`atomic_output`): a crash, a full disk or Ctrl-C
while saving leaves the previous model file untouched and no temporary file
behind.

Format 2 keeps the metadata's long lists of strings (a vocabulary's words, a lemma
lexicon) in arrays of their own (:func:`put_strings`, :func:`get_strings`): parsing them
as JSON was a fifth of loading the bundled model.  Files of format 1 (every list in the
JSON) load as they always did.

Loading reads the file once and takes every member from that one buffer (the zip's CRC-32
of each member checked, object arrays refused), where ``np.load`` went through a file
object per member: a third of the time of loading a model.

Compression: the archive is stored uncompressed (ZIP_STORED).  Measured on a
realistic tagger (20000x100 embeddings, a 128-unit LSTM, random-normal/uniform
weights, which is what trained weights look like to deflate), deflate saved
only 7-8% (8.3 MB -> 7.7 MB float32, 4.2 MB -> 3.8 MB float16) while making
writing 20-100x slower and loading 1.5-16x slower.  ``float16=True`` is the
size option that matters: it halves the file.
"""

import contextlib
import io
import json
import mmap
import os
import re
import stat
import struct
import zipfile
import zlib
from typing import Optional

import numpy as np
from numpy.lib import format as npformat

from .errors import ModelError

__all__ = [
    "FORMAT_VERSION",
    "META_NAME",
    "save_model",
    "load_model",
    "check_shapes",
    "atomic_output",
    "atomic_write_bytes",
    "put_strings",
    "get_strings",
    "is_strings_reference",
    "defer_strings",
    "StringIndex",
]

#: Version of the model file layout; bumped on incompatible changes.  2: lists of strings
#: may be stored in arrays (put_strings), the metadata holding a reference to them.
FORMAT_VERSION = 2

#: Reserved array name holding the UTF-8 JSON metadata.
META_NAME = "__meta__.json"

_NAME_RE = re.compile(r"[A-Za-z0-9_.]+\Z")
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip
_FLOAT16_MAX = float(np.finfo(np.float16).max)


# --------------------------------------------------------------------------
# Atomic writing: the one mechanism used for models and checkpoints.


def _new_file_mode(path):
    """Permissions for the file replacing PATH: keep an existing file's mode,
    else the usual 0o666 minus umask (mkstemp alone would give 0o600)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory):
    """Make a rename durable (POSIX); best effort, errors are ignored."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path):
    """Yield a binary file object whose contents replace PATH atomically.

    The data goes to a temporary file in PATH's directory, which is flushed,
    fsync'ed and then renamed over PATH with ``os.replace``.  If the body
    raises anything (including KeyboardInterrupt), the temporary file is
    removed, PATH is left as it was, and the exception propagates unchanged
    (OSError stays OSError).
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    mode = _new_file_mode(path)
    import tempfile  # here: loading a model (a one-shot `seqtag tag`) need not pay ~8 ms for it

    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fd = None  # now owned (and closed) by f
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def atomic_write_bytes(path, data):
    """Replace PATH with DATA atomically (see :func:`atomic_output`).

    Raises OSError on failure, with PATH untouched.
    """
    with atomic_output(path) as f:
        f.write(data)


# --------------------------------------------------------------------------
# Lists of strings in arrays (format 2)


def put_strings(arrays, name, strings):
    """Store a list of strings in ARRAYS (a dict of arrays to save) under NAME, and return
    the reference to it the metadata keeps: {"strings": NAME, "count": len(strings)}.

    The strings are stored as UTF-8 (lone surrogates kept) joined by newlines, so loading
    them is one decode and one split; where a string holds a newline, their lengths go to
    NAME.lengths too."""
    strings = list(strings)
    text = "\n".join(strings)
    arrays[name] = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8).copy()
    if text.count("\n") != max(len(strings) - 1, 0):
        arrays[name + ".lengths"] = np.array([len(s) for s in strings], dtype=np.int64)
    return {"strings": name, "count": len(strings)}


def is_strings_reference(value):
    """Whether a metadata value is a put_strings reference (else it is the list itself, as
    format 1 keeps it)."""
    return isinstance(value, dict) and "strings" in value


def get_strings(arrays, reference):
    """The list of strings a put_strings reference names in ARRAYS (a loaded model's);
    ValueError (UnicodeDecodeError among them; or KeyError, TypeError) if the arrays do
    not hold it."""
    return defer_strings(arrays, reference)[1]()


def defer_strings(arrays, reference):
    """(the number of strings, a function giving the list) for a put_strings reference:
    the stored bytes are decoded and counted now (ValueError, KeyError or TypeError if
    they are not what the reference says), the list is made only when asked for (tens of
    thousands of strings are a millisecond each time)."""
    name, count = reference["strings"], reference["count"]
    if not isinstance(name, str) or type(count) is not int or count < 0:
        raise ValueError(f"bad reference to a list of strings {reference!r}")
    data = arrays[name]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
        raise ValueError(f"{name} is not a byte array")
    text = data.tobytes().decode("utf-8", "surrogatepass")
    lengths = arrays.get(name + ".lengths")
    if lengths is None:
        if (text.count("\n") + 1 if count else len(text) + 1) != max(count, 1):
            raise ValueError(f"{name} holds {text.count(chr(10)) + 1} strings, not {count}")
        return count, (lambda: text.split("\n") if count else [])
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 0).any():
        raise ValueError(f"{name}.lengths is not a list of lengths")
    if len(lengths) != count:
        raise ValueError(f"{name} holds {len(lengths)} strings, not {count}")
    ends = np.cumsum(lengths + 1) - 1  # each string is followed by a newline but the last
    if (int(ends[-1]) if count else 0) != len(text) or any(text[e] != "\n"
                                                        for e in ends[:-1].tolist()):
        raise ValueError(f"{name} does not hold strings of the lengths {name}.lengths says")
    starts, ends = (ends - lengths).tolist(), ends.tolist()
    return count, (lambda: [text[a:b] for a, b in zip(starts, ends)])


class StringIndex:
    """Where each of distinct strings without newlines is in their list, stored as one
    uint8 array (UTF-8, lone surrogates kept, joined by newlines: what put_strings writes
    for such strings), looked up without a dict at first.

    Dicts of the bundled model's 15,734 words, 14,363 front-end chunks and 16,109 casing
    forms took ~10 ms of loading it, more than a one-shot `seqtag tag` spends on its few
    words.  The first SCANS lookups search the stored bytes instead (~70 microseconds
    each); the dict is made when more come.  Thread-safe: two threads may both make the
    dict, the same one."""

    SCANS = 64

    def __init__(self, array):
        data = np.asarray(array, dtype=np.uint8).reshape(-1)
        raw = data.tobytes()
        raw.decode("utf-8", "surrogatepass")  # UnicodeDecodeError (a ValueError) if broken
        self._bytes = b"\n" + raw + b"\n"
        newlines = np.flatnonzero(data == 10)
        self.size = len(newlines) + 1 if raw else 0
        #: where each string starts in the bytes, and how many characters come before it
        self._starts = np.concatenate([[0], newlines + 1]) if raw else np.zeros(0, np.int64)
        # a character is a byte, less UTF-8's continuation bytes (rare), less the newlines
        continuations = np.flatnonzero((data & 0xC0) == 0x80)
        self._before = (self._starts - np.arange(self.size)
                        - np.searchsorted(continuations, self._starts))
        self.chars = len(raw) - len(continuations) - max(self.size - 1, 0)
        self._scans = 0
        self._index: Optional[dict] = None  # string -> its index

    def strings(self) -> list:
        return self._bytes[1:-1].decode("utf-8", "surrogatepass").split("\n") \
            if self.size else []

    def locate(self, key):
        """(the index of `key`, how many characters the strings before it have), or None
        if it is not one of them."""
        index = self._index
        if index is None and self._scans >= self.SCANS:
            index = self._indexed()
        if index is None:
            self._scans += 1  # a race between threads only makes the dict sooner
            if not self.size or "\n" in key:
                return None
            # the last of equal strings, as the dict made from the list keeps it
            at = self._bytes.rfind(b"\n" + key.encode("utf-8", "surrogatepass") + b"\n")
            if at < 0:
                return None
            i = int(np.searchsorted(self._starts, at))  # its start in the stored bytes: at
        else:
            i = index.get(key)
            if i is None:
                return None
        return i, int(self._before[i])

    def scanning(self) -> bool:
        """Whether the next lookup searches the bytes (no dict made yet)."""
        return self._index is None and self._scans < self.SCANS

    def index(self) -> dict:
        """{string: its index}, made now if it was not yet."""
        index = self._index
        return self._indexed() if index is None else index

    def _indexed(self):
        strings = self.strings()
        self._index = index = dict(zip(strings, range(len(strings))))
        return index


# --------------------------------------------------------------------------
# Saving


def _prepare_arrays(arrays, float16):
    """Validate ARRAYS; return (arrays to store, {name: original dtype str})."""
    stored = {}
    dtypes = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"bad model array name {name!r}: use letters, digits, dots and underscores"
            )
        if name == META_NAME:
            raise ValueError(f"array name {META_NAME!r} is reserved for the model metadata")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise ValueError(
                f"model array {name!r} has object dtype; models hold numeric arrays only"
            )
        dtypes[name] = arr.dtype.str
        if float16 and arr.dtype in (np.float32, np.float64):
            finite = arr[np.isfinite(arr)]
            if finite.size and float(np.abs(finite).max()) > _FLOAT16_MAX:
                raise ValueError(
                    f"model array {name!r} has values beyond the float16 range "
                    f"(+-{_FLOAT16_MAX:g}); save it without float16"
                )
            arr = arr.astype(np.float16)
        stored[name] = arr
    return stored, dtypes


def _write_npz(f, arrays):
    """Write ARRAYS (name -> ndarray) to the binary file F as an .npz archive.

    This is what np.savez does, minus its keyword-argument API (which would
    make weights named 'file' or 'allow_pickle' impossible) and with pickling
    switched off.
    """
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                npformat.write_array(member, arr, allow_pickle=False)


def _check_file_name(path, verb):
    """ModelError for a path no file can have (the OS calls would raise ValueError)."""
    name = os.fspath(path)
    if ("\0" if isinstance(name, str) else b"\0") in name:
        raise ModelError(f"cannot {verb} model {name!r}: a file name cannot hold a NUL "
                         "character")


def save_model(path, arrays, meta, *, float16=False):
    """Write ARRAYS (name -> ndarray) and META (a JSON-able dict) to PATH.

    META is stored with ``format_version`` and ``array_dtypes`` (name -> dtype
    string) added; these overwrite any keys of the same name.  With
    ``float16=True`` float32/float64 arrays are stored as float16 and restored
    to their dtype by :func:`load_model`; other dtypes are stored as they are.

    Raises ValueError for bad input (reserved or malformed names, object
    arrays, non-JSON metadata, values that overflow float16) and ModelError
    if the file cannot be written; PATH is then left untouched.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"model metadata must be a dict, not {type(meta).__name__}")
    stored, dtypes = _prepare_arrays(arrays, float16)
    full_meta = dict(meta)
    full_meta["format_version"] = FORMAT_VERSION
    full_meta["array_dtypes"] = dtypes
    try:
        meta_bytes = json.dumps(full_meta, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ValueError(f"model metadata is not JSON-serialisable: {e}") from None
    stored[META_NAME] = np.frombuffer(meta_bytes, dtype=np.uint8)
    _check_file_name(path, "write")
    try:
        with atomic_output(path) as f:
            _write_npz(f, stored)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ModelError(f"cannot write model {os.fspath(path)}: {reason}") from e


# --------------------------------------------------------------------------
# Loading


# a zip member's local header: its magic, then (past 22 bytes) its name's and extra's lengths
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10_000  # np.load's limit (max_header_size)
# the header np.save writes: {'descr': '<f2', 'fortran_order': False, 'shape': (3, 4), }
_NPY_HEADER = re.compile(r"\{'descr': '([<>|=][a-zA-Z][0-9]*)', 'fortran_order': (True|False), "
                         r"'shape': \(((?:\d+, ?)*\d*)\), \} *\n?\Z")


def _npy_header(data, start, end):
    """(dtype, shape, fortran_order, data offset) of the .npy member data[start:end];
    ValueError if it is not one (an object dtype's is the message np.load gives, which
    _read_npz reports as a pickle)."""
    if data[start:start + 6] != _NPY_MAGIC or end - start < 10:
        raise ValueError("not a .npy member")
    major = data[start + 6]
    if major == 1:
        size, at = struct.unpack_from("<H", data, start + 8)[0], start + 10
    elif major in (2, 3):
        if end - start < 12:
            raise ValueError("not a .npy member")
        size, at = struct.unpack_from("<I", data, start + 8)[0], start + 12
    else:
        raise ValueError(f"unknown .npy format version {major}")
    if at + size > end:
        raise ValueError("EOF reading the .npy header")
    if size > _MAX_HEADER:  # as np.load: a huge header is no array's, and slow to parse
        raise ValueError(f"the .npy header is {size} bytes long, more than any array's")
    text = bytes(data[at:at + size]).decode("utf-8" if major == 3 else "latin-1")
    found = _NPY_HEADER.match(text)
    if found:  # what numpy writes for a plain dtype: no Python parser needed
        descr, fortran = found.group(1), found.group(2) == "True"
        shape = tuple(int(n) for n in found.group(3).replace(" ", "").split(",") if n)
    else:  # any other header (a structured dtype, say): read as numpy reads it
        import ast  # 1.5 ms to import, for headers numpy writes for rare dtypes only

        header = ast.literal_eval(text)
        if not isinstance(header, dict) or set(header) != {"descr", "fortran_order",
                                                           "shape"}:
            raise ValueError(f"bad .npy header {text.strip()!r}")
        descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
        if (not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape)
                or not isinstance(fortran, bool)):
            raise ValueError(f"bad .npy header {text.strip()!r}")
    dtype = npformat.descr_to_dtype(descr)
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    return dtype, shape, fortran, at + size


def _member_array(data, start, end):
    """The array of the .npy member data[start:end], a read-only view of data."""
    dtype, shape, fortran, at = _npy_header(data, start, end)
    count = 1
    for n in shape:
        count *= n
    size = count * dtype.itemsize
    if at + size > end:
        raise ValueError(f"EOF: reading array data, expected {size} bytes got {end - at}")
    if not count:
        return np.zeros(shape, dtype=dtype)
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=at)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def _file_bytes(f):
    """The contents of the open binary file F: a read-only memory map of it (6.8 MB of the
    bundled model read into a new buffer cost twice the time, page faults and copy),
    or the bytes read where it cannot be mapped."""
    try:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        f.seek(0)
        return f.read()


def _read_npz(f, path):
    """Every member of the open .npz file F as {name: array} (a member that is not a
    .npy: its bytes); errors name PATH.  The file is mapped into memory once (read where
    it cannot be): the arrays are read-only views of it (load_model copies those it
    keeps; the mapping goes with the last of them), each member's CRC-32 checked as
    zipfile checks it."""
    try:
        data = _file_bytes(f)
        with zipfile.ZipFile(f) as zf:
            out = {}
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1:
                    raw = zf.read(info)  # compressed (np.savez_compressed) or encrypted
                    out[name] = np.load(io.BytesIO(raw), allow_pickle=False) \
                        if name != info.filename else raw
                    continue
                magic, name_size, extra_size = _LOCAL_HEADER.unpack_from(data, info.header_offset)
                if magic != b"PK\x03\x04":
                    raise zipfile.BadZipFile("Bad magic number for file header")
                start = info.header_offset + _LOCAL_HEADER.size + name_size + extra_size
                end = start + info.compress_size
                if end > len(data):
                    raise EOFError(f"member {info.filename} is cut short")
                if zlib.crc32(memoryview(data)[start:end]) != info.CRC:
                    raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
                out[name] = (_member_array(data, start, end) if name != info.filename
                             else data[start:end])
            return out
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise ModelError(
                f"{path} holds a pickled object; refusing to load it "
                "(models never contain pickles)"
            ) from None
        raise ModelError(f"{path} is truncated or corrupt: {e}") from None
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as e:
        raise ModelError(f"{path} is truncated or corrupt: {e}") from None
    except OSError as e:
        raise ModelError(f"cannot read model {path}: {e.strerror or e}") from None
    except Exception as e:  # zlib.error, struct.error, ... from a mangled member
        raise ModelError(f"{path} is truncated or corrupt: {type(e).__name__}: {e}") from None


def _parse_meta(raw, path):
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelError(f"{path} has invalid metadata: {META_NAME} is not a byte array")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{path} has invalid metadata: {e}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path} has invalid metadata: not a JSON object")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise ModelError(f"{path} has invalid metadata: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path} was written by a newer seqtag (model format {version}; "
            f"this seqtag reads up to format {FORMAT_VERSION}); upgrade seqtag"
        )
    dtypes = meta.get("array_dtypes", {})
    if not isinstance(dtypes, dict) or not all(isinstance(v, str) for v in dtypes.values()):
        raise ModelError(f"{path} has invalid metadata: bad array_dtypes")
    return meta


def _restore_dtypes(arrays, recorded, path):
    """Give each array the dtype `recorded` says it had (float16-stored ones back to float32
    or float64), as a private writable array: _read_npz's views of the file are copied."""
    for name, dtype_str in recorded.items():
        arr = arrays.get(name)
        if arr is None:
            raise ModelError(f"{path} is truncated or corrupt: weight {name} is listed but absent")
        if arr.dtype.str == dtype_str:
            continue
        try:
            want = np.dtype(dtype_str)
        except TypeError:
            want = None
        if arr.dtype == np.float16 and want in (np.float32, np.float64):
            arrays[name] = _from_float16(arr, want)
        else:
            raise ModelError(
                f"{path} is truncated or corrupt: weight {name} is stored as {arr.dtype}"
                f" but the metadata says {dtype_str}"
            )
    for name, arr in arrays.items():
        if isinstance(arr, np.ndarray) and not arr.flags.writeable:
            arrays[name] = arr.copy()


def _from_float16(arr, dtype):
    """A float16 array as a new float32 (or float64) array, the same values: float32 by the
    compiled core's conversion (F16C: 0.7 ms for the bundled model's weights where
    NumPy's cast takes 5 to 9), NumPy's bits exactly."""
    if dtype != np.float32 or arr.dtype != np.dtype("<f2") or not arr.flags.c_contiguous:
        return arr.astype(dtype)
    from . import _core

    out = np.empty(arr.shape, dtype=np.float32)
    _core.half_to_float(arr.reshape(-1).view(np.uint16), out.reshape(-1))
    return out


def load_model(path):
    """Read a model written by :func:`save_model`.

    Returns ``(arrays, meta)``: every weight array (float16-stored arrays back
    in their original dtype) and the metadata dict, including the
    ``format_version`` and ``array_dtypes`` keys save_model added.  Every
    failure is a ModelError with a one-line message naming PATH.
    """
    path = os.fspath(path)
    _check_file_name(path, "read")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(f"{path} is a directory, not a model file") from None
    except OSError as e:
        if os.path.isdir(path):  # Windows reports a directory as PermissionError
            raise ModelError(f"{path} is a directory, not a model file") from None
        raise ModelError(f"cannot read model {path}: {e.strerror or e}") from None
    with f:
        try:
            magic = f.read(4)
            f.seek(0)
        except OSError as e:
            raise ModelError(f"cannot read model {path}: {e.strerror or e}") from None
        # Checked here, not left to np.load: it would treat any non-zip,
        # non-.npy file as a pickle (refused, but with a misleading message).
        if magic not in _ZIP_MAGICS:
            raise ModelError(f"{path} is not a seqtag model (not an .npz archive)")
        arrays = _read_npz(f, path)
    raw_meta = arrays.pop(META_NAME, None)
    if raw_meta is None:
        raise ModelError(f"{path} is an .npz but not a seqtag model (no metadata)")
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray):  # a zip member that is not a .npy
            raise ModelError(f"{path} is truncated or corrupt: member {name} is not an array")
    meta = _parse_meta(raw_meta, path)
    _restore_dtypes(arrays, meta.get("array_dtypes", {}), path)
    return arrays, meta


def check_shapes(arrays, expected):
    """Raise ModelError for the first weight in EXPECTED (name -> shape) that
    is missing from ARRAYS or has a different shape."""
    for name, shape in expected.items():
        if name not in arrays:
            raise ModelError(f"model is missing weight {name}")
        actual = tuple(np.shape(arrays[name]))
        if actual != tuple(shape):
            raise ModelError(f"model weight {name} has shape {actual}, expected {tuple(shape)}")
