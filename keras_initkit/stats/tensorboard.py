"""A dependency-free TensorBoard event-file writer (pure Python and NumPy).

Activation statistics should reach TensorBoard on every Keras backend, and JAX or
PyTorch users may not have TensorFlow installed. This module writes the event files
TensorBoard reads (TFRecord-framed `Event` protocol buffers) by hand: a few fields of
four messages in the protobuf wire format, and a CRC-32C for the framing (a compiled
`google_crc32c` or `crc32c` module if one is installed, else table lookups: NumPy blocks
for long records). `EventWriter.one_event` writes many values as one record.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import math
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Self  # typing.Self needs Python 3.11


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()
_TABLE = np.array(_CRC32C_TABLE, dtype=np.uint32)
# CRC-32C is linear over GF(2), so a long message is cut into blocks of `_BLOCK` bytes:
# `_POSITION[p, b]` is the register (initial value 0, no final xor) after byte `b` at
# position `p` of a block followed by the rest of the block as zeros, so a block's
# register is the xor of one lookup per byte (NumPy, no Python loop per byte); the
# blocks are then chained by `_SHIFT[k]`, the register after 256 zero bytes when byte `k`
# of the register held the value `i`.
_BLOCK = 256
_SMALL = 128  # below this many bytes the byte-wise loop is faster than NumPy's overhead


def _zero_byte(register: np.ndarray) -> np.ndarray:
    return _TABLE[register & 0xFF] ^ (register >> np.uint32(8))


def _block_tables() -> tuple[np.ndarray, np.ndarray]:
    position = np.empty((_BLOCK, 256), dtype=np.uint32)
    position[-1] = _TABLE
    for p in range(_BLOCK - 2, -1, -1):
        position[p] = _zero_byte(position[p + 1])
    shift = np.arange(256, dtype=np.uint32) << (np.arange(4, dtype=np.uint32)[:, None] * 8)
    for _ in range(_BLOCK):
        shift = _zero_byte(shift)
    return position, shift


_POSITION, _SHIFT = _block_tables()
_POSITIONS = np.arange(_BLOCK)
_S0, _S1, _S2, _S3 = (row.tolist() for row in _SHIFT)


def _crc32c_python(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_numpy(data: bytes) -> int:
    # An initial register of 0xFFFFFFFF equals a zero register with the first four bytes
    # inverted; leading zero bytes leave a zero register unchanged, so the message is
    # padded at the front to whole blocks.
    size = len(data)
    if size < 4:
        return _crc32c_python(data)
    padded = np.zeros(-(-size // _BLOCK) * _BLOCK, dtype=np.uint8)
    padded[len(padded) - size:] = np.frombuffer(data, dtype=np.uint8)
    padded[len(padded) - size:len(padded) - size + 4] ^= 0xFF
    blocks = padded.reshape(-1, _BLOCK)
    lookups = _POSITION[_POSITIONS, blocks]
    while lookups.shape[1] > 1:  # xor the halves: `_BLOCK` is a power of two
        half = lookups.shape[1] // 2
        lookups = lookups[:, :half] ^ lookups[:, half:]
    registers = lookups[:, 0].tolist()
    crc = 0
    for register in registers:
        crc = (_S0[crc & 0xFF] ^ _S1[(crc >> 8) & 0xFF] ^ _S2[(crc >> 16) & 0xFF]
               ^ _S3[crc >> 24] ^ register)
    return crc ^ 0xFFFFFFFF


def _native_crc32c() -> Callable[[bytes], int] | None:
    """A compiled CRC-32C, when one is installed (neither is a dependency)."""
    try:
        google_crc32c = importlib.import_module("google_crc32c")
        if google_crc32c.implementation == "c":
            return lambda data: int(google_crc32c.value(data))
    except (ImportError, AttributeError):
        pass
    try:
        module = importlib.import_module("crc32c")
        return lambda data: int(module.crc32c(data))
    except (ImportError, AttributeError):
        return None


_NATIVE = _native_crc32c()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`; `crc32c(b"123456789") == 0xE3069283`.

    A compiled `google_crc32c` or `crc32c` module if one is installed; else a byte loop
    for short data and NumPy block lookups for long data (a histogram's event).
    """
    if _NATIVE is not None:
        return _NATIVE(data)
    if len(data) < _SMALL:
        return _crc32c_python(data)
    return _crc32c_numpy(data)


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # int64: negative values take ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _double(field: int, value: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", value)


def _bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


_FILE_COUNTER = itertools.count()
_COUNTER_LOCK = threading.Lock()


class EventWriter:
    """Writes scalars and histograms to one TensorBoard event file, without TensorFlow.

    Every `add_*` call appends its record and flushes it to the operating system, so
    a crash of the training process loses nothing already added; `flush()` and
    `close()` also `fsync` the file. Histograms are given as bin `edges` and
    `counts` (as `np.histogram` returns them): bins `[e0, e1), ..., [e_{k-1}, e_k]`
    become TensorBoard buckets with right limits `edges[1:]`. An `under` count
    (values below `edges[0]`) is prepended as a bucket whose limit is `edges[0]`, and
    an `over` count is appended as a bucket whose limit is `max`. TensorBoard draws
    the first non-empty bucket from `min` and the last one up to `max`, so pass the
    data's real `minimum`/`maximum` when known; otherwise they default to the outer
    limits of the outermost non-empty buckets (an under/overflow bucket without a
    finite `minimum`/`maximum` is given the width of its neighbouring bin).

    Args:
        log_dir: the directory to write to (created if missing); point TensorBoard's
            `--logdir` at it or at a parent.
        filename_suffix: appended to the event file's name.
        auto_flush: flush each event to the operating system as it is added (else
            call `flush_to_os()` after a group of them).

    Example:
    >>> import os, shutil, tempfile
    >>> from keras_initkit.stats.tensorboard import EventWriter
    >>> log_dir = tempfile.mkdtemp()
    >>> with EventWriter(log_dir) as writer:
    ...     writer.add_scalar("dense/std", 0.81, step=1)
    ...     writer.add_histogram("dense/output", [-1.0, 0.0, 1.0], [3.0, 5.0], step=1)
    >>> [name.startswith("events.out.tfevents.") for name in os.listdir(log_dir)]
    [True]
    >>> shutil.rmtree(log_dir)

    Reference:
    - [TFRecord format](https://www.tensorflow.org/tutorials/load_data/tfrecord)
    - [TensorBoard](https://github.com/tensorflow/tensorboard) (`event.proto`,
      `summary.proto`, `histogram.proto`)
    """

    def __init__(self, log_dir: str, filename_suffix: str = "", auto_flush: bool = True) -> None:
        self.auto_flush = auto_flush
        os.makedirs(log_dir, exist_ok=True)
        with _COUNTER_LOCK:
            counter = next(_FILE_COUNTER)
        name = (
            f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
            f".{os.getpid()}.{counter}{filename_suffix}"
        )
        self.path: str = os.path.join(log_dir, name)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._pending: list[bytes] | None = None
        self._pending_step = 0
        self._write_event(_bytes(3, b"brain.Event:2"))

    @contextlib.contextmanager
    def one_event(self, step: int) -> Iterator[None]:
        """Within the block, the values added at `step` are written as one event.

        One event (one TFRecord, two checksums) with many values, as TensorFlow's merged
        summaries were, instead of one event per value; TensorBoard reads them the same.

        Example:
        >>> import shutil, tempfile
        >>> from keras_initkit.stats.tensorboard import EventWriter
        >>> log_dir = tempfile.mkdtemp()
        >>> with EventWriter(log_dir) as writer, writer.one_event(step=3):
        ...     writer.add_scalar("dense/mean", 0.1, step=3)
        ...     writer.add_scalar("dense/std", 0.8, step=3)
        >>> shutil.rmtree(log_dir)
        """
        self._pending, self._pending_step = [], int(step)
        try:
            yield
        finally:
            values, self._pending = self._pending, None
            if values:
                self._write_summary(values, self._pending_step)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """Writes one scalar (as float32; NaN and infinities are written as they are)."""
        try:
            packed = struct.pack("<f", value)
        except OverflowError:  # beyond float32: infinite, as a float32 cast makes it
            packed = struct.pack("<f", math.copysign(math.inf, value))
        self._write_value(tag, b"\x15" + packed, step)

    def add_histogram(
        self,
        tag: str,
        edges: Sequence[float] | np.ndarray,
        counts: Sequence[float] | np.ndarray,
        step: int,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        total: float | None = None,
        sum_squares: float | None = None,
        under: float = 0.0,
        over: float = 0.0,
    ) -> None:
        """Writes one histogram of `len(counts)` bins with finite `edges` (one more).

        `total` (the sum of the values) and `sum_squares` default to the bin centres
        weighted by the counts. Non-finite keyword values are ignored (defaults used).
        """
        e = np.asarray(edges, dtype=np.float64).ravel()
        c = np.asarray(counts, dtype=np.float64).ravel()
        if e.size != c.size + 1 or c.size == 0:
            raise ValueError(f"Need len(edges) == len(counts) + 1 >= 2, got {e.size}.")
        if not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
            raise ValueError("Histogram edges must be finite and non-decreasing.")
        lows, highs, bucket = e[:-1].tolist(), e[1:].tolist(), c.tolist()
        minimum, maximum = _finite(minimum), _finite(maximum)
        under, over = _finite(under) or 0.0, _finite(over) or 0.0
        if under > 0:
            low = lows[0] - (highs[0] - lows[0]) if minimum is None else minimum
            minimum = min(low, lows[0])
            lows, highs, bucket = [minimum, *lows], [lows[0], *highs], [under, *bucket]
        if over > 0:
            high = highs[-1] + (highs[-1] - lows[-1]) if maximum is None else maximum
            maximum = max(high, highs[-1])
            lows, highs, bucket = [*lows, highs[-1]], [*highs, maximum], [*bucket, over]
        filled = [i for i, count in enumerate(bucket) if count > 0]
        if minimum is None:
            minimum = lows[filled[0]] if filled else lows[0]
        if maximum is None:
            maximum = highs[filled[-1]] if filled else highs[-1]
        weights = np.asarray(bucket)
        centres = (np.asarray(lows) + np.asarray(highs)) / 2
        total, sum_squares = _finite(total), _finite(sum_squares)
        moments = [
            minimum,
            maximum,
            weights.sum(),
            weights @ centres if total is None else total,
            weights @ centres**2 if sum_squares is None else sum_squares,
        ]
        histo = b"".join(_double(i, float(v)) for i, v in enumerate(moments, 1))
        histo += _bytes(6, np.asarray(highs, dtype="<f8").tobytes())
        histo += _bytes(7, weights.astype("<f8").tobytes())
        self._write_value(tag, _bytes(5, histo), step)

    def flush_to_os(self) -> None:
        """Hands buffered events to the operating system (no `fsync`)."""
        self._file.flush()

    def flush(self) -> None:
        """Writes buffered data to disk (`flush` and `os.fsync`)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flushes and closes the file; closing twice is harmless."""
        if not self._file.closed:
            self.flush()
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_value(self, tag: str, value: bytes, step: int) -> None:
        summary_value = _bytes(1, tag.encode("utf-8")) + value
        if self._pending is not None and int(step) == self._pending_step:
            self._pending.append(summary_value)
        else:
            self._write_summary([summary_value], int(step))

    def _write_summary(self, values: list[bytes], step: int) -> None:
        summary = b"".join(_bytes(1, value) for value in values)
        self._write_event(_varint(2 << 3) + _varint(step) + _bytes(5, summary))

    def _write_event(self, fields: bytes) -> None:
        data = _double(1, time.time()) + fields
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", _masked_crc(header)))
        self._file.write(data + struct.pack("<I", _masked_crc(data)))
        if self.auto_flush:
            self._file.flush()
