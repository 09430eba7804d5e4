import errno
import io
import json
import os
import stat
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npformat

from seqtag import modelfile
from seqtag.errors import ModelError, SeqtagError
from seqtag.modelfile import (
    FORMAT_VERSION,
    atomic_output,
    atomic_write_bytes,
    check_shapes,
    load_model,
    save_model,
)


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "embed.weight": rng.normal(0, 0.1, (50, 8)).astype(np.float32),
        "tagger.weight_ih_l0": rng.normal(0, 0.1, (16, 8)).astype(np.float32),
        "tagger.bias_hh_l0": rng.normal(0, 0.1, 16),  # float64
        "vocab_ids": np.arange(50, dtype=np.int64),
        "tag_ids": np.array([3, 1, 2], dtype=np.int32),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


META = {"tags": ["NOUN", "VERB", "ADJ"], "hidden": 16, "name": "modèle ü"}


def write_raw_npz(path, meta_obj=None, meta_bytes=None, **arrays):
    """An .npz written by plain numpy, with optional raw metadata."""
    if meta_obj is not None:
        meta_bytes = json.dumps(meta_obj).encode()
    if meta_bytes is not None:
        arrays["__meta__.json"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    np.savez(path, **arrays)


def dir_listing(d):
    return sorted(os.listdir(d))


# ---------------------------------------------------------------- round trip


def test_round_trip_exact(tmp_path):
    path = tmp_path / "m.npz"
    arrays = sample_arrays()
    save_model(path, arrays, META)
    loaded, meta = load_model(path)
    assert set(loaded) == set(arrays)
    for name, arr in arrays.items():
        assert loaded[name].dtype == arr.dtype, name
        assert loaded[name].shape == arr.shape, name
        np.testing.assert_array_equal(loaded[name], arr)
    assert {k: meta[k] for k in META} == META
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["array_dtypes"]["tagger.bias_hh_l0"] == "<f8"
    assert dir_listing(tmp_path) == ["m.npz"]


def test_file_is_a_plain_npz_without_pickles(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, sample_arrays(), META)
    with np.load(path, allow_pickle=False) as npz:
        assert "__meta__.json" in npz.files
        meta = json.loads(npz["__meta__.json"].tobytes().decode("utf-8"))
        np.testing.assert_array_equal(npz["vocab_ids"], np.arange(50))
    assert meta["hidden"] == 16
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_names_that_clash_with_np_savez_keywords(tmp_path):
    path = tmp_path / "m.npz"
    arrays = {"file": np.ones(2), "allow_pickle": np.zeros(3), "arr_0": np.ones(1)}
    save_model(path, arrays, {})
    loaded, _ = load_model(path)
    assert {k: v.shape for k, v in loaded.items()} == {"file": (2,), "allow_pickle": (3,), "arr_0": (1,)}


def test_caller_meta_not_mutated_and_reserved_keys_overwritten(tmp_path):
    path = tmp_path / "m.npz"
    meta = {"format_version": 99, "array_dtypes": "junk", "x": 1}
    save_model(path, {"a": np.ones(2)}, meta)
    assert meta == {"format_version": 99, "array_dtypes": "junk", "x": 1}
    _, loaded = load_model(path)
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["array_dtypes"] == {"a": "<f8"}


def test_overwrite_existing_model(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, {"a": np.ones(2)}, {"v": 1})
    save_model(path, {"b": np.zeros(3)}, {"v": 2})
    arrays, meta = load_model(str(path))
    assert list(arrays) == ["b"] and meta["v"] == 2
    assert dir_listing(tmp_path) == ["m.npz"]


def test_new_file_gets_normal_permissions(tmp_path):
    path = tmp_path / "m.npz"
    old = os.umask(0o022)
    try:
        save_model(path, {"a": np.ones(2)}, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # not mkstemp's 0o600


def test_overwrite_keeps_existing_permissions(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, {"a": np.ones(2)}, {})
    os.chmod(path, 0o640)
    save_model(path, {"a": np.ones(3)}, {})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


# ---------------------------------------------------------------- float16


def test_float16_round_trip(tmp_path):
    path16 = tmp_path / "m16.npz"
    arrays = sample_arrays()
    save_model(path16, arrays, META, float16=True)
    with np.load(path16) as npz:  # really stored as float16, ints untouched
        assert npz["embed.weight"].dtype == np.float16
        assert npz["tagger.bias_hh_l0"].dtype == np.float16
        assert npz["vocab_ids"].dtype == np.int64
        assert npz["tag_ids"].dtype == np.int32
    loaded, meta = load_model(path16)
    for name, arr in arrays.items():
        assert loaded[name].dtype == arr.dtype, name
        np.testing.assert_allclose(loaded[name], arr, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(loaded["vocab_ids"], arrays["vocab_ids"])
    assert meta["array_dtypes"]["embed.weight"] == "<f4"


def test_float16_halves_file_size(tmp_path):
    big = {"w": np.random.default_rng(1).normal(0, 0.1, (200, 100)).astype(np.float32)}
    save_model(tmp_path / "a.npz", big, {}, float16=True)
    save_model(tmp_path / "b.npz", big, {})
    assert os.path.getsize(tmp_path / "a.npz") < 0.55 * os.path.getsize(tmp_path / "b.npz")


def test_float16_refuses_overflow(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=r"'big' has values beyond the float16 range"):
        save_model(path, {"big": np.array([1e6], dtype=np.float32)}, {}, float16=True)
    assert not path.exists()
    # inf/nan are kept as they are
    save_model(path, {"x": np.array([np.inf, np.nan, 1.0])}, {}, float16=True)
    loaded, _ = load_model(path)
    assert np.isinf(loaded["x"][0]) and np.isnan(loaded["x"][1]) and loaded["x"].dtype == np.float64


# ---------------------------------------------------------------- bad input to save


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"__meta__.json": np.ones(1)}, "reserved"),
        ({"w": np.array([object()], dtype=object)}, "object dtype"),
        ({"w": np.array([(1, None)], dtype=[("a", "i4"), ("b", "O")])}, "object dtype"),
        ({"a/b": np.ones(1)}, "bad model array name"),
        ({"": np.ones(1)}, "bad model array name"),
        ({"a b": np.ones(1)}, "bad model array name"),
    ],
)
def test_save_refuses_bad_arrays(tmp_path, arrays, message):
    with pytest.raises(ValueError, match=message):
        save_model(tmp_path / "m.npz", arrays, {})
    assert dir_listing(tmp_path) == []


def test_save_refuses_non_json_meta(tmp_path):
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_model(tmp_path / "m.npz", {"a": np.ones(1)}, {"x": object()})
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_model(tmp_path / "m.npz", {"a": np.ones(1)}, {"x": float("nan")})
    assert dir_listing(tmp_path) == []


def test_save_into_missing_directory(tmp_path):
    path = tmp_path / "nope" / "m.npz"
    with pytest.raises(ModelError) as ei:
        save_model(path, {"a": np.ones(1)}, {})
    assert str(ei.value) == f"cannot write model {path}: No such file or directory"


# ---------------------------------------------------------------- atomicity


def failing_writer(monkeypatch, tmp_path, exc):
    """Make the 2nd array write put some bytes on disk, then raise EXC."""
    real = npformat.write_array
    calls = []

    def write_array(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            fp.write(b"\x93NUMPY partial" * 1000)
            # the half-written temporary file really is on disk here
            assert any(n.endswith(".tmp") for n in os.listdir(tmp_path))
            raise exc
        return real(fp, array, *args, **kwargs)

    monkeypatch.setattr(npformat, "write_array", write_array)
    return calls


def test_full_disk_leaves_previous_model_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_model(path, sample_arrays(), META)
    before = path.read_bytes()
    calls = failing_writer(monkeypatch, tmp_path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    with pytest.raises(ModelError) as ei:
        save_model(path, {"x": np.ones(1000), "y": np.ones(1000)}, {"new": True})
    assert len(calls) == 2
    assert str(ei.value) == f"cannot write model {path}: No space left on device"
    assert isinstance(ei.value.__cause__, OSError)
    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["m.npz"]
    monkeypatch.undo()
    assert load_model(path)[1]["hidden"] == 16


def test_keyboard_interrupt_leaves_previous_model_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_model(path, sample_arrays(), META)
    before = path.read_bytes()
    failing_writer(monkeypatch, tmp_path, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        save_model(path, {"x": np.ones(1000), "y": np.ones(1000)}, {})
    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["m.npz"]


def test_failure_without_previous_model_leaves_nothing(tmp_path, monkeypatch):
    failing_writer(monkeypatch, tmp_path, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(ModelError, match="Input/output error"):
        save_model(tmp_path / "m.npz", {"x": np.ones(3), "y": np.ones(3)}, {})
    assert dir_listing(tmp_path) == []


def test_failing_rename_leaves_previous_model_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_model(path, {"a": np.ones(2)}, {})
    before = path.read_bytes()

    def bad_replace(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(modelfile.os, "replace", bad_replace)
    with pytest.raises(ModelError, match="cannot write model .*Invalid cross-device link"):
        save_model(path, {"a": np.ones(3)}, {})
    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["m.npz"]


def test_atomic_write_bytes(tmp_path):
    path = tmp_path / "ckpt.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(str(path), b"two")
    assert path.read_bytes() == b"two"
    with pytest.raises(RuntimeError):
        with atomic_output(path) as f:
            f.write(b"three")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"two"
    assert dir_listing(tmp_path) == ["ckpt.bin"]


def test_atomic_output_temp_file_naming(tmp_path):
    path = tmp_path / "m.npz"
    with atomic_output(path) as f:
        f.write(b"x")
        names = dir_listing(tmp_path)
        assert len(names) == 1
        assert names[0].startswith(".m.npz.") and names[0].endswith(".tmp")
    assert dir_listing(tmp_path) == ["m.npz"]


# ---------------------------------------------------------------- load errors


def load_error(path):
    with pytest.raises(ModelError) as ei:
        load_model(path)
    assert isinstance(ei.value, SeqtagError)
    message = str(ei.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    path = tmp_path / "none.npz"
    assert load_error(path) == f"model file not found: {path}"


def test_a_name_with_a_nul_character(tmp_path):
    name = str(tmp_path / "a\0b.npz")
    assert load_error(name) == f"cannot read model {name!r}: a file name cannot hold a NUL " \
        "character"
    with pytest.raises(ModelError) as ei:
        save_model(name, {"w": np.zeros(2)}, {})
    assert str(ei.value) == f"cannot write model {name!r}: a file name cannot hold a NUL " \
        "character"
    assert os.listdir(tmp_path) == []


def test_directory(tmp_path):
    assert load_error(tmp_path) == f"{tmp_path} is a directory, not a model file"


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world\n", b"\x80\x04\x95 pickle-ish", b"PK"],
    ids=["empty", "text", "pickle", "two-bytes"],
)
def test_not_an_npz(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    assert load_error(path) == f"{path} is not a seqtag model (not an .npz archive)"


def test_npy_file_is_not_an_npz(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.ones(3))
    assert load_error(path) == f"{path} is not a seqtag model (not an .npz archive)"


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.9, -1], ids=["half", "tenth", "most", "minus-1-byte"])
def test_truncated(tmp_path, keep):
    path = tmp_path / "m.npz"
    save_model(path, sample_arrays(), META)
    data = path.read_bytes()
    size = len(data) - 1 if keep == -1 else int(len(data) * keep)
    path.write_bytes(data[:size])
    assert load_error(path).startswith(f"{path} is truncated or corrupt: ")


def test_corrupt_byte_in_weights(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, {"w": np.zeros(10000, dtype=np.float32)}, {})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the weight data: CRC mismatch
    path.write_bytes(bytes(data))
    message = load_error(path)
    assert message.startswith(f"{path} is truncated or corrupt: ")
    assert "CRC" in message


class PickleBomb:
    """Unpickling this creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_object_is_refused_and_never_executed(tmp_path):
    path = tmp_path / "evil.npz"
    marker = tmp_path / "PWNED"
    bomb = np.array([PickleBomb(marker)], dtype=object)
    np.savez(path, allow_pickle=True, w=bomb,
             **{"__meta__.json": np.frombuffer(json.dumps({"format_version": 1}).encode(), np.uint8)})
    assert not marker.exists()
    assert load_error(path) == (
        f"{path} holds a pickled object; refusing to load it (models never contain pickles)"
    )
    assert not marker.exists()
    # sanity: the bomb is live, so the check above means something
    with np.load(path, allow_pickle=True) as npz:
        npz["w"]
    assert marker.exists()


def test_npz_without_metadata(tmp_path):
    path = tmp_path / "m.npz"
    write_raw_npz(path, w=np.ones(3))
    assert load_error(path) == f"{path} is an .npz but not a seqtag model (no metadata)"


def test_empty_zip(tmp_path):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    assert load_error(path) == f"{path} is an .npz but not a seqtag model (no metadata)"


@pytest.mark.parametrize(
    "meta_bytes, detail",
    [
        (b"{not json", "has invalid metadata: "),
        (b"\xff\xfe", "has invalid metadata: "),
        (b"[1, 2]", "has invalid metadata: not a JSON object"),
        (b"{}", "has invalid metadata: bad format_version None"),
        (b'{"format_version": "1"}', "has invalid metadata: bad format_version '1'"),
        (b'{"format_version": true}', "has invalid metadata: bad format_version True"),
        (b'{"format_version": 1, "array_dtypes": [1]}', "has invalid metadata: bad array_dtypes"),
    ],
)
def test_invalid_metadata(tmp_path, meta_bytes, detail):
    path = tmp_path / "m.npz"
    write_raw_npz(path, meta_bytes=meta_bytes, w=np.ones(3))
    assert load_error(path).startswith(f"{path} {detail}")


def test_metadata_not_bytes(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, **{"__meta__.json": np.ones(3)})
    assert load_error(path) == f"{path} has invalid metadata: __meta__.json is not a byte array"


def test_newer_format_version(tmp_path):
    path = tmp_path / "m.npz"
    write_raw_npz(path, meta_obj={"format_version": FORMAT_VERSION + 1}, w=np.ones(3))
    assert load_error(path) == (
        f"{path} was written by a newer seqtag (model format 3; "
        f"this seqtag reads up to format 2); upgrade seqtag"
    )


def test_dtype_metadata_mismatch(tmp_path):
    path = tmp_path / "m.npz"
    write_raw_npz(path, meta_obj={"format_version": 1, "array_dtypes": {"w": "<i8"}},
                  w=np.ones(3, dtype=np.float16))
    assert load_error(path) == (
        f"{path} is truncated or corrupt: weight w is stored as float16 but the metadata says <i8"
    )
    write_raw_npz(path, meta_obj={"format_version": 1, "array_dtypes": {"gone": "<f4"}},
                  w=np.ones(3))
    assert load_error(path) == f"{path} is truncated or corrupt: weight gone is listed but absent"


def test_non_npy_member(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, {"w": np.ones(2)}, {})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.txt", "hello")
    assert load_error(path) == f"{path} is truncated or corrupt: member notes.txt is not an array"


# ---------------------------------------------------------------- check_shapes


def test_check_shapes():
    arrays = {"a": np.zeros((2, 3)), "b": np.zeros(4), "s": np.zeros(())}
    check_shapes(arrays, {"a": (2, 3), "b": (4,), "s": ()})
    check_shapes(arrays, {"a": [2, 3]})
    with pytest.raises(ModelError) as ei:
        check_shapes(arrays, {"b": (4,), "a": (3, 2)})
    assert str(ei.value) == "model weight a has shape (2, 3), expected (3, 2)"
    with pytest.raises(ModelError) as ei:
        check_shapes(arrays, {"a": (2, 3), "tagger.weight_hh_l0": (8, 2)})
    assert str(ei.value) == "model is missing weight tagger.weight_hh_l0"
    with pytest.raises(ModelError) as ei:
        check_shapes(arrays, {"b": (4, 1)})
    assert str(ei.value) == "model weight b has shape (4,), expected (4, 1)"


# ---------------------------------------------------------------- reading members from one buffer


def test_members_np_load_reads_load_alike(tmp_path):
    """What np.load gives, member for member: Fortran order, big-endian, a structured
    dtype (whose header takes numpy's parser), zero-size and 0-d arrays, a compressed
    archive; every array private and writable."""
    arrays = {
        "fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        "big_endian": np.arange(5, dtype=">i4"),
        "structured": np.array([(1, 2.5)], dtype=[("a", "<i2"), ("b", "<f8")]),
        "empty": np.zeros((0, 3), dtype=np.float16),
        "scalar": np.array(7, dtype=np.int64),
        "half": np.array([1.5, -0.0, np.inf, 65504], dtype=np.float16),
    }
    meta = np.frombuffer(json.dumps({"format_version": 1}).encode(), np.uint8)
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, **arrays, **{"__meta__.json": meta})
        loaded, _ = load_model(path)
        assert set(loaded) == set(arrays)
        for name, arr in arrays.items():
            assert loaded[name].dtype == arr.dtype and loaded[name].shape == arr.shape, name
            np.testing.assert_array_equal(loaded[name], arr)
            assert loaded[name].flags.writeable, name
        loaded["fortran"][0, 0] = 99  # a copy: the file is not touched
        assert load_model(path)[0]["fortran"][0, 0] == 0


def test_float16_restored_bit_for_bit(tmp_path):
    """Every float16 value (each of the 65,536 bit patterns, NaNs included) comes back as
    float32 and float64 exactly as numpy converts it."""
    half = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    path = tmp_path / "m.npz"
    save_model(path, {"f32": half.astype(np.float32), "f64": half.astype(np.float64)}, {},
               float16=True)
    loaded, meta = load_model(path)
    assert meta["array_dtypes"] == {"f32": "<f4", "f64": "<f8"}
    assert loaded["f32"].view(np.uint32).tolist() == \
        half.astype(np.float32).view(np.uint32).tolist()
    assert loaded["f64"].view(np.uint64).tolist() == \
        half.astype(np.float64).view(np.uint64).tolist()


def test_member_cut_short_is_corrupt(tmp_path):
    """An array whose data is shorter than its header says (the zip itself intact)."""
    path = tmp_path / "m.npz"
    member = io.BytesIO()
    npformat.write_array(member, np.ones(100, dtype=np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w.npy", member.getvalue()[:-8])
        zf.writestr("__meta__.json.npy", _npy_bytes(np.frombuffer(b'{"format_version": 1}',
                                                                   np.uint8)))
    assert load_error(path) == (f"{path} is truncated or corrupt: EOF: reading array data, "
                                "expected 400 bytes got 392")


def test_huge_npy_header_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), " + " " * 20000 + "}\n"
    raw = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header.encode() + bytes(4)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w.npy", raw)
        zf.writestr("__meta__.json.npy", _npy_bytes(np.frombuffer(b'{"format_version": 1}',
                                                                   np.uint8)))
    assert load_error(path).startswith(f"{path} is truncated or corrupt: the .npy header is ")


def _npy_bytes(arr):
    out = io.BytesIO()
    npformat.write_array(out, arr)
    return out.getvalue()


# ---------------------------------------------------------------- lists of strings in arrays


@pytest.mark.parametrize("strings", [[], [""], ["", ""], ["a"], ["dog", "É", "\udc80x"],
                                     ["two\nlines", "", "x\n"]],
                         ids=["none", "one-empty", "two-empty", "one", "unicode", "newlines"])
def test_strings_round_trip(tmp_path, strings):
    arrays = {}
    reference = modelfile.put_strings(arrays, "list", strings)
    assert reference == {"strings": "list", "count": len(strings)}
    assert ("list.lengths" in arrays) == any("\n" in s for s in strings)
    path = tmp_path / "m.npz"
    save_model(path, arrays, {"list": reference})
    loaded, meta = load_model(path)
    assert modelfile.is_strings_reference(meta["list"])
    assert modelfile.get_strings(loaded, meta["list"]) == strings


def test_strings_that_do_not_match_their_reference():
    arrays = {}
    reference = modelfile.put_strings(arrays, "list", ["a", "b", "c"])
    with pytest.raises(ValueError, match="holds 3 strings, not 4"):
        modelfile.get_strings(arrays, dict(reference, count=4))
    with pytest.raises(KeyError):
        modelfile.get_strings({}, reference)
    with pytest.raises(ValueError, match="not a byte array"):
        modelfile.get_strings({"list": np.ones(3)}, reference)
    with pytest.raises(UnicodeDecodeError):
        modelfile.get_strings({"list": np.frombuffer(b"a\n\xff\nc", np.uint8)}, reference)
    arrays = {}
    reference = modelfile.put_strings(arrays, "list", ["a\nb", "c"])
    arrays["list.lengths"] = np.array([2, 2])
    with pytest.raises(ValueError, match="lengths"):
        modelfile.get_strings(arrays, reference)


@pytest.mark.parametrize("f16c", [True, False], ids=["f16c", "scalar"])
def test_half_to_float_is_numpy_astype_bit_for_bit(f16c):
    """Both conversions of the compiled core (F16C where the CPU has it, and the scalar one
    that runs elsewhere) against NumPy on every float16 bit pattern, at every alignment and
    tail length of the blocks of eight."""
    from seqtag import _core

    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    want = bits.view(np.float16).astype(np.float32).view(np.uint32)
    for start in range(9):
        src = np.ascontiguousarray(bits[start:])
        out = np.empty(len(src), dtype=np.float32)
        _core.half_to_float(src, out, f16c)
        assert np.array_equal(out.view(np.uint32), want[start:]), start
    _core.half_to_float(np.zeros(0, np.uint16), np.zeros(0, np.float32), f16c)
    with pytest.raises(ValueError):
        _core.half_to_float(np.zeros(3, np.uint16), np.zeros(2, np.float32), f16c)
