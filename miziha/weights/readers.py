"""Checkpoint files as ``name -> np.ndarray`` without PyTorch: ``torch.save`` files (zip
and legacy layouts) through a restricted unpickler, safetensors files (timm's hub), Paddle
``.pdparams`` files (miziha's, PaddleClas's).

:func:`read_checkpoint` picks the reader from the file's content (not its extension) and
says which array layout the arrays have: ``"torch"`` (Linear ``[out, in]``, BatchNorm
``running_mean``) or ``"paddle"`` (Linear ``[in, out]``, BatchNorm ``_mean``).
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import zipfile
from typing import (Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple,
                    Union)

import numpy as np

__all__ = ["Checkpoint", "read_checkpoint", "read_torch", "read_safetensors", "read_paddle",
           "unwrap_state_dict", "WRAPPER_KEYS", "TORCH_STORAGE_DTYPES"]

PathLike = Union[str, "os.PathLike[str]"]

#: Keys under which training scripts store the weights, in the order they are tried:
#: EMA weights first (CSWin's releases hold ``state_dict`` and ``state_dict_ema``; its
#: ``main.py --eval_checkpoint`` evaluates the EMA weights, the published accuracy, and
#: PaddleViT's converter reads them too), then ``model`` (Swin, CycleMLP, AS-MLP) and
#: ``state_dict`` (HRNet, timm's CheckpointSaver). ``ema=False`` skips the EMA key.
WRAPPER_KEYS = ("state_dict_ema", "model", "state_dict")

#: ``torch.<Name>Storage`` -> the NumPy dtype of its elements (``bfloat16`` is widened to
#: float32 when read).
TORCH_STORAGE_DTYPES: Dict[str, str] = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": "bf16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?"}

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER (legacy layout)


class Checkpoint(NamedTuple):
    """A file's tensors: ``state`` (names -> arrays), ``layout`` (``"torch"`` or
    ``"paddle"``), ``format`` (``"torch-zip"``, ``"torch-legacy"``, ``"safetensors"``,
    ``"paddle"``), ``unwrapped`` (the wrapper key taken and a ``"module."`` prefix removed,
    in that order), ``passed_over`` (the file's other wrapper keys holding a state dict,
    e.g. ``state_dict`` when ``state_dict_ema`` was taken)."""

    state: Dict[str, np.ndarray]
    layout: str
    format: str
    unwrapped: Tuple[str, ...] = ()
    passed_over: Tuple[str, ...] = ()


class _StorageType(NamedTuple):
    """What the unpickler returns for ``torch.FloatStorage`` and its kin."""

    name: str
    dtype: str


class _Storage:
    """One storage's elements, flat (``array`` is set once its bytes are read)."""

    def __init__(self, array: Optional[np.ndarray] = None) -> None:
        self.array = array


class _Tensor(NamedTuple):
    """A tensor as pickled: its storage and view; made an array by :func:`_materialise`
    once every storage is read (the legacy layout writes them after the pickle)."""

    storage: _Storage
    offset: int
    size: Tuple[int, ...]
    stride: Tuple[int, ...]


def _bytes_to_array(data: bytes, dtype: str, byteorder: str) -> np.ndarray:
    """Raw storage bytes -> a flat array (native byte order; bfloat16 widened to float32)."""
    order = "<" if byteorder == "little" else ">"
    if dtype == "bf16":
        halves = np.frombuffer(data, dtype=order + "u2").astype(np.uint32)
        return (halves << 16).view(np.float32)
    array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder(order))
    return array.astype(array.dtype.newbyteorder("="))


def _rebuild_tensor(storage: _Storage, offset: int, size: Tuple[int, ...],
                    stride: Tuple[int, ...], *_ignored: Any) -> _Tensor:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``."""
    if not isinstance(storage, _Storage):
        raise ValueError("not a PyTorch checkpoint: a tensor without a storage")
    return _Tensor(storage, int(offset), tuple(int(s) for s in size),
                   tuple(int(s) for s in stride))


def _rebuild_parameter(data: _Tensor, *_ignored: Any) -> _Tensor:
    """``torch._utils._rebuild_parameter(data, requires_grad, hooks)`` -> the data."""
    return data


def _tensor_array(tensor: _Tensor, name: str) -> np.ndarray:
    """A copy of the strided view ``tensor`` describes (``name``: where it is in the file,
    for errors). Every element must lie in the storage and no two may share one: weights
    files hold contiguous tensors or plain views (slices, transposes), never a stride 0
    (``expand``) or an overlap, which would let a tiny file describe a huge array."""
    flat, offset, size, stride = tensor.storage.array, tensor.offset, tensor.size, tensor.stride
    if flat is None:
        raise ValueError(f"truncated or corrupt checkpoint: the storage of tensor {name} was "
                         f"never read")
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
        raise ValueError(f"corrupt tensor record {name}: offset {offset}, size {list(size)}, "
                         f"stride {list(stride)}")
    if 0 in size:
        return np.zeros(size, dtype=flat.dtype)
    span = 1  # storage elements spanned by the dimensions of smaller stride
    for step, count in sorted((s, n) for n, s in zip(size, stride) if n > 1):
        if step < span:
            raise ValueError(f"tensor {name} of size {list(size)} has stride {list(stride)}: "
                             f"its elements overlap in the storage (a stride 0 or an "
                             f"overlapping view), which no weights file holds")
        span += step * (count - 1)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise ValueError(f"truncated or corrupt storage: tensor {name} of size {list(size)} "
                         f"at offset {offset} needs {last + 1} elements, the storage has "
                         f"{flat.size}")
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=[s * flat.itemsize for s in stride])
    return np.array(view)


def _materialise(obj: Any) -> Any:
    """``obj`` with every :class:`_Tensor` in its dicts, lists and tuples made an array.
    Each object is converted once (memoised by ``id``): what the pickle shares stays shared,
    so the work is linear in the pickle's size however deeply it nests shared containers."""
    done: Dict[int, Any] = {}

    def convert(item: Any, name: str) -> Any:
        key = id(item)
        if key in done:
            return done[key]
        if isinstance(item, _Tensor):
            done[key] = _tensor_array(item, name)
        elif isinstance(item, Mapping):
            done[key] = result = collections.OrderedDict()
            for k, v in item.items():
                result[k] = convert(v, f"{name}.{k}" if name else str(k))
        elif isinstance(item, list):
            done[key] = result = []
            result.extend(convert(v, f"{name}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, tuple):
            done.setdefault(key, tuple(convert(v, f"{name}[{i}]") for i, v in enumerate(item)))
        else:
            return item
        return done[key]

    return convert(obj, "")


#: The only globals a tensor checkpoint needs, with what stands in for each: PyTorch's
#: tensor rebuilders and storage types, and NumPy's array reconstruction (``paddle.save``
#: pickles NumPy arrays).
_ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in TORCH_STORAGE_DTYPES.items()},
    **{(f"numpy.{core}.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0]
       for core in ("core", "_core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what a weights file holds: containers, numbers, strings, and the
    globals of :data:`_ALLOWED_GLOBALS`; any other global is refused before it is looked
    up, so nothing in the file runs. Persistent ids (PyTorch storages) go to
    ``load_storage``."""

    def __init__(self, file: Any, load_storage: Callable[[tuple], _Storage]) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: a weights file holds only tensors, "
                f"containers and numbers, and nothing in it is run")
        return _ALLOWED_GLOBALS[module, name]

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        return self._load_storage(pid)


def _unpickle(file: Any, load_storage: Optional[Callable[[tuple], _Storage]] = None) -> Any:
    """One restricted unpickle from ``file`` (bytes or a binary file)."""
    def no_storage(pid: tuple) -> _Storage:
        raise pickle.UnpicklingError("a PyTorch storage in a file that has none")
    file = io.BytesIO(file) if isinstance(file, bytes) else file
    return _RestrictedUnpickler(file, load_storage or no_storage).load()


def _read_torch_zip(path: str) -> Any:
    """``torch.save``'s zip layout: ``<root>/data.pkl`` and one record per storage,
    ``<root>/data/<key>``, in the byte order of ``<root>/byteorder`` (little if absent)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pickles) != 1:
                raise ValueError(f"{path}: a zip file but not a PyTorch checkpoint (no "
                                 f"data.pkl record)")
            root = pickles[0][:-len("data.pkl")]

            def read(record: str) -> bytes:
                info = archive.getinfo(record)
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ValueError(f"{path}: record {record} is compressed (zip method "
                                     f"{info.compress_type}); torch.save stores records "
                                     f"uncompressed, and a compressed one could expand "
                                     f"without limit")
                return archive.read(info)

            byteorder = read(root + "byteorder").decode() \
                if root + "byteorder" in names else "little"
            storages: Dict[str, _Storage] = {}

            def load_storage(pid: tuple) -> _Storage:
                storage_type, key = pid[1], str(pid[2])
                if key not in storages:
                    record = f"{root}data/{key}"
                    if record not in names:
                        raise ValueError(f"{path}: truncated or corrupt checkpoint, record "
                                         f"{record} is missing")
                    storages[key] = _Storage(_bytes_to_array(read(record),
                                                             storage_type.dtype, byteorder))
                return storages[key]

            return _materialise(_unpickle(read(pickles[0]), load_storage))
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise ValueError(f"{path}: truncated or corrupt checkpoint ({error})") from error


def _is_legacy_torch(head: bytes) -> bool:
    """Whether a file starts as ``torch.save``'s legacy layout: a pickled magic number
    (protocol 2, LONG1 of 10 bytes)."""
    return head[:4] == b"\x80\x02\x8a\x0a" and \
        int.from_bytes(head[4:14], "little") == _TORCH_MAGIC


def _read_torch_legacy(path: str) -> Any:
    """``torch.save(..., _use_new_zipfile_serialization=False)``: pickles of the magic
    number, protocol version and system info, the object (storages as persistent ids), the
    storage keys, then each storage as its int64 element count and its bytes."""
    with open(path, "rb") as file:
        if not _is_legacy_torch(file.read(14)):
            raise ValueError(f"{path}: not a PyTorch checkpoint (no torch.save magic number)")
        file.seek(0)
        for _ in range(2):
            _unpickle(file)
        system = _unpickle(file)
        byteorder = "big" if isinstance(system, dict) and \
            system.get("little_endian") is False else "little"
        storages: Dict[str, Tuple[_StorageType, _Storage]] = {}
        views: List[Tuple[_Storage, str, int, int]] = []

        def load_storage(pid: tuple) -> _Storage:
            key, view = str(pid[2]), pid[5] if len(pid) > 5 else None
            if key not in storages:
                storages[key] = (pid[1], _Storage())
            if view is None:
                return storages[key][1]
            viewed = _Storage()
            views.append((viewed, key, int(view[1]), int(view[2])))
            return viewed

        result = _unpickle(file, load_storage)
        for key in (str(k) for k in _unpickle(file)):
            if key not in storages:
                raise ValueError(f"{path}: corrupt checkpoint (storage {key} is not used)")
            storage_type, storage = storages[key]
            itemsize = 2 if storage_type.dtype == "bf16" else np.dtype(storage_type.dtype).itemsize
            count = int.from_bytes(file.read(8), byteorder)
            if count * itemsize > os.fstat(file.fileno()).st_size - file.tell():
                raise ValueError(f"{path}: truncated checkpoint (storage {key} has "
                                 f"{count * itemsize} bytes, more than the rest of the file)")
            data = file.read(count * itemsize)
            if len(data) != count * itemsize:
                raise ValueError(f"{path}: truncated checkpoint (storage {key} has "
                                 f"{len(data)} of its {count * itemsize} bytes)")
            storage.array = _bytes_to_array(data, storage_type.dtype, byteorder)
    for viewed, key, offset, size in views:
        base = storages[key][1].array
        viewed.array = None if base is None else base[offset:offset + size]
    return _materialise(result)


def read_torch(path: PathLike) -> Any:
    """The object in a ``torch.save`` file (zip or legacy layout), tensors as NumPy arrays,
    without PyTorch and without running anything the file names.

    Raises:
        ValueError: not a PyTorch checkpoint, truncated or corrupt, a global other than
            a weights file's (the message names it), a compressed zip record, a tensor
            whose elements overlap or leave its storage, nesting too deep for Python, or
            too large for memory.
    """
    path = os.fspath(path)
    with _reading(path, "PyTorch"):
        with open(path, "rb") as file:
            zipped = file.read(2) == b"PK"  # a zip whose end (central directory) may be cut
        if zipped:
            return _read_torch_zip(path)
        return _read_torch_legacy(path)


@contextlib.contextmanager
def _reading(path: str, kind: str) -> Iterator[None]:
    """What unpickling a ``kind`` checkpoint at ``path`` raises, as a ValueError naming the
    file: a refused global, a truncated or foreign file, nesting too deep for Python or a
    file too large for memory."""
    try:
        yield
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: {error}") from error
    except (EOFError, IndexError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: truncated or not a {kind} checkpoint "
                         f"({type(error).__name__}: {error})") from error
    except (RecursionError, MemoryError) as error:
        what = "nested too deeply" if isinstance(error, RecursionError) else \
            "too large for memory"
        raise ValueError(f"{path} is not a checkpoint miziha can read: {what} "
                         f"({type(error).__name__})") from error


def read_safetensors(path: PathLike) -> Dict[str, np.ndarray]:
    """A safetensors file (timm's hub weights) through ``safetensors.numpy``."""
    from safetensors.numpy import load_file
    try:
        return dict(load_file(os.fspath(path)))
    except Exception as error:  # safetensors raises its own SafetensorError
        raise ValueError(f"{os.fspath(path)}: not a readable safetensors file ({error})") \
            from error


def read_paddle(path: PathLike) -> Dict[str, np.ndarray]:
    """A Paddle ``.pdparams`` file (``paddle.save`` of a state dict: a pickle of NumPy
    arrays), read with the restricted unpickler rather than ``paddle.load``, which would
    run whatever the pickle names.

    Raises:
        ValueError: not a pickled mapping, truncated, or a global other than NumPy's.
    """
    path = os.fspath(path)
    with _reading(path, "Paddle"), open(path, "rb") as file:
        state = _unpickle(file)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: a Paddle file without a state dict (got "
                         f"{type(state).__name__})")
    if "UnpackBigParamInfor@@" in state:
        raise ValueError(f"{path}: a parameter over 4 GB split by paddle.save (protocol 2); "
                         f"save it again with protocol=4")
    return {k: v for k, v in state.items() if k != "StructuredToParameterName@@"}


def unwrap_state_dict(obj: Any, ema: bool = True) -> Tuple[Dict[str, np.ndarray],
                                                           Tuple[str, ...], Tuple[str, ...]]:
    """The state dict inside a training checkpoint: the first of :data:`WRAPPER_KEYS` that
    holds a mapping (``ema=False``: not ``state_dict_ema``), with a ``module.`` prefix on
    every key (DataParallel) removed; only array entries are kept, and they must be numeric
    (bool, integer or float).

    Returns: the state dict, what was unwrapped (the key taken, ``"module."``), and the
    other wrapper keys that hold a mapping (passed over).

    Raises:
        ValueError: no arrays in it, or an array of another dtype (the key is named).
    """
    unwrapped, passed_over = [], []
    if isinstance(obj, Mapping):
        present = [key for key in WRAPPER_KEYS if isinstance(obj.get(key), Mapping)]
        taken = [key for key in present if ema or key != "state_dict_ema"][:1]
        if taken:
            unwrapped.append(taken[0])
            passed_over = [key for key in present if key != taken[0]]
            obj = obj[taken[0]]
    if not isinstance(obj, Mapping):
        raise ValueError(f"not a state dict: the checkpoint holds a {type(obj).__name__}")
    state = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not state:
        raise ValueError(f"no tensors in the checkpoint (keys: {list(obj)[:8]})")
    for key, value in state.items():
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{key}: a weights file holds bool, integer or float arrays, "
                             f"this one has dtype {value.dtype}")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        unwrapped.append("module.")
    return state, tuple(unwrapped), tuple(passed_over)


def read_checkpoint(path: PathLike, ema: bool = True) -> Checkpoint:
    """Read any supported weights file; the reader is chosen from the file's first bytes.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of a supported format, truncated, or refused.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path}")
    with open(path, "rb") as file:
        head = file.read(16)
    if head.startswith(b"PK"):
        raw, layout, fmt = read_torch(path), "torch", "torch-zip"
    elif len(head) >= 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        return Checkpoint(read_safetensors(path), "torch", "safetensors")
    elif head[:1] != b"\x80":
        raise ValueError(f"{path}: not a checkpoint (neither a zip, a pickle nor a "
                         f"safetensors file; starts with {head[:8]!r})")
    elif _is_legacy_torch(head):
        raw, layout, fmt = read_torch(path), "torch", "torch-legacy"
    else:
        raw, layout, fmt = read_paddle(path), "paddle", "paddle"
    state, unwrapped, passed_over = unwrap_state_dict(raw, ema)
    return Checkpoint(state, layout, fmt, unwrapped, passed_over)
