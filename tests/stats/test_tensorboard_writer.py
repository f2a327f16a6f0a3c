"""The pure-Python event writer, read back with TensorBoard's and TensorFlow's readers."""

import dataclasses
import math
import os
import re
import shutil
import socket
import time

import numpy as np
import pytest

from keras_initkit.stats import tensorboard
from keras_initkit.stats.tensorboard import EventWriter, crc32c

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)
from tensorboard.backend.event_processing.event_file_loader import (
    EventFileLoader,
)


def _accumulate(log_dir):
    accumulator = EventAccumulator(
        str(log_dir), size_guidance={"scalars": 0, "histograms": 0}
    )
    accumulator.Reload()
    return accumulator


def _histogram(log_dir, tag):
    (event,) = _accumulate(log_dir).Histograms(tag)
    return event.step, event.histogram_value


# RFC 3720 (iSCSI) appendix B.4 and the usual check value.
CRC32C_VECTORS = [
    (b"", 0),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]


@pytest.mark.parametrize("implementation", [crc32c, tensorboard._crc32c_python,
                                            tensorboard._crc32c_numpy])
def test_crc32c_known_vectors(implementation):
    for data, expected in CRC32C_VECTORS:
        assert implementation(data) == expected, data


def test_crc32c_block_lookups_equal_the_byte_loop_on_random_data():
    """Every length across the block size (256) and the small-data cut, and long data."""
    rng = np.random.default_rng(0)
    lengths = [*range(0, 600), 4096, 70_001]
    for n in lengths:
        data = rng.bytes(n)
        assert tensorboard._crc32c_numpy(data) == tensorboard._crc32c_python(data), n
        assert crc32c(data) == tensorboard._crc32c_python(data), n


def test_scalars_round_trip(tmp_path):
    values = {0: 0.5, 1: -1.25, 7: 1e-3, 8: 3.0e38}
    with EventWriter(str(tmp_path)) as writer:
        for step, value in values.items():
            writer.add_scalar("layer/std", value, step)
        writer.add_scalar("layer/mean", 2.0, 0)
    accumulator = _accumulate(tmp_path)
    assert sorted(accumulator.Tags()["scalars"]) == ["layer/mean", "layer/std"]
    events = accumulator.Scalars("layer/std")
    assert [event.step for event in events] == list(values)
    assert [event.value for event in events] == [
        float(np.float32(value)) for value in values.values()
    ]
    assert all(abs(event.wall_time - time.time()) < 60 for event in events)


def test_nan_and_infinite_scalars_round_trip(tmp_path):
    with EventWriter(str(tmp_path)) as writer:
        writer.add_scalar("nan", float("nan"), 1)
        writer.add_scalar("inf", -np.inf, 1)
        writer.add_scalar("overflow", 1e300, 1)  # beyond float32: +inf, like a cast
    accumulator = _accumulate(tmp_path)
    assert math.isnan(accumulator.Scalars("nan")[0].value)
    assert accumulator.Scalars("inf")[0].value == -math.inf
    assert accumulator.Scalars("overflow")[0].value == math.inf


def test_histogram_round_trips(tmp_path):
    data = np.random.default_rng(0).normal(size=1000)
    counts, edges = np.histogram(data, bins=np.linspace(-4.0, 4.0, 17))
    with EventWriter(str(tmp_path)) as writer:
        writer.add_histogram("dense/output", edges, counts.astype(float), step=3)
    assert _accumulate(tmp_path).Tags()["histograms"] == ["dense/output"]
    step, histo = _histogram(tmp_path, "dense/output")
    assert step == 3
    assert histo.num == counts.sum() == 1000
    assert histo.bucket_limit == edges[1:].tolist()
    assert histo.bucket == counts.astype(float).tolist()
    filled = np.flatnonzero(counts)  # min/max default to the outer non-empty bins
    assert histo.min == edges[filled[0]]
    assert histo.max == edges[filled[-1] + 1]
    centres = (edges[:-1] + edges[1:]) / 2
    assert histo.sum == pytest.approx(counts @ centres)
    assert histo.sum_squares == pytest.approx(counts @ centres**2)


def test_histogram_keyword_statistics(tmp_path):
    with EventWriter(str(tmp_path)) as writer:
        writer.add_histogram(
            "h", [0.0, 1.0, 2.0], [1.0, 1.0], 0,
            minimum=0.25, maximum=1.5, total=1.75, sum_squares=2.3125,
        )  # fmt: skip
    _, histo = _histogram(tmp_path, "h")
    assert (histo.min, histo.max, histo.num) == (0.25, 1.5, 2.0)
    assert (histo.sum, histo.sum_squares) == (1.75, 2.3125)


def test_histogram_under_and_overflow(tmp_path):
    edges, counts = [-1.0, 0.0, 1.0], [3.0, 4.0]
    with EventWriter(str(tmp_path)) as writer:
        writer.add_histogram("both", edges, counts, 1, under=2.0, over=5.0)
        writer.add_histogram(
            "given", edges, counts, 1, under=2.0, over=5.0, minimum=-7.0, maximum=9.0
        )
        writer.add_histogram("none", edges, counts, 1, under=0.0, over=0.0)
    _, histo = _histogram(tmp_path, "both")
    assert histo.bucket_limit == [-1.0, 0.0, 1.0, 2.0]  # overflow: one bin width
    assert histo.bucket == [2.0, 3.0, 4.0, 5.0]
    assert (histo.min, histo.max, histo.num) == (-2.0, 2.0, 14.0)
    _, histo = _histogram(tmp_path, "given")
    assert histo.bucket_limit == [-1.0, 0.0, 1.0, 9.0]
    assert histo.bucket == [2.0, 3.0, 4.0, 5.0]
    assert (histo.min, histo.max, histo.num) == (-7.0, 9.0, 14.0)
    _, histo = _histogram(tmp_path, "none")
    assert histo.bucket_limit == [0.0, 1.0]
    assert (histo.min, histo.max, histo.num) == (-1.0, 1.0, 7.0)


def test_histogram_ignores_non_finite_keywords(tmp_path):
    with EventWriter(str(tmp_path)) as writer:
        writer.add_histogram(
            "h", [0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 0.0], 0,
            minimum=np.nan, maximum=np.inf, total=np.nan, sum_squares=-np.inf,
            under=np.nan, over=np.inf,
        )  # fmt: skip
    _, histo = _histogram(tmp_path, "h")
    assert (histo.min, histo.max, histo.num) == (1.0, 2.0, 2.0)
    assert (histo.sum, histo.sum_squares) == (3.0, 4.5)
    assert histo.bucket == [0.0, 2.0, 0.0]


def test_histogram_rejects_bad_edges(tmp_path):
    with EventWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match="len"):
            writer.add_histogram("h", [0.0, 1.0], [1.0, 2.0], 0)
        with pytest.raises(ValueError, match="finite"):
            writer.add_histogram("h", [0.0, np.inf], [1.0], 0)
        with pytest.raises(ValueError, match="non-decreasing"):
            writer.add_histogram("h", [1.0, 0.0], [1.0], 0)


def test_file_layout_and_crcs_validate_with_tensorflow(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from tensorboard.compat.proto.event_pb2 import Event

    with EventWriter(str(tmp_path), filename_suffix=".v2") as writer:
        writer.add_scalar("s", 1.5, -2)
        writer.add_histogram("h", [0.0, 1.0], [4.0], 5)
    (name,) = os.listdir(tmp_path)
    host, pid = re.escape(socket.gethostname()), os.getpid()
    assert re.fullmatch(rf"events\.out\.tfevents\.\d+\.{host}\.{pid}\.\d+\.v2", name)

    events = list(EventFileLoader(writer.path).Load())
    assert [event.file_version for event in events] == ["brain.Event:2", "", ""]
    assert [event.step for event in events[1:]] == [-2, 5]  # negative int64 varint

    records = [
        Event.FromString(r.numpy()) for r in tf.data.TFRecordDataset(writer.path)
    ]
    assert [event.summary.value[0].tag for event in records[1:]] == ["s", "h"]
    assert records[1].summary.value[0].simple_value == 1.5

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    shutil.copy(writer.path, corrupt / "events.out.tfevents.0.corrupt")
    raw = bytearray((corrupt / "events.out.tfevents.0.corrupt").read_bytes())
    raw[-6] ^= 0xFF  # a byte of the last record's data: its CRC no longer matches
    (corrupt / "events.out.tfevents.0.corrupt").write_bytes(bytes(raw))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(corrupt / "events.out.tfevents.0.corrupt")))


def test_each_add_is_on_disk_before_close(tmp_path):
    writer = EventWriter(str(tmp_path))
    try:
        writer.add_scalar("s", 1.0, 1)
        assert [e.value for e in _accumulate(tmp_path).Scalars("s")] == [1.0]
        writer.add_histogram("h", [0.0, 1.0, 2.0], [1.0, 2.0], 1)
        assert _histogram(tmp_path, "h")[1].bucket == [1.0, 2.0]
        writer.add_scalar("s", 2.0, 2)
        assert [e.value for e in _accumulate(tmp_path).Scalars("s")] == [1.0, 2.0]
    finally:
        writer.close()
    writer.close()  # closing twice is harmless


def test_two_writers_in_the_same_second_use_different_files(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    first, second = EventWriter(str(tmp_path)), EventWriter(str(tmp_path))
    first.add_scalar("a", 1.0, 0)
    second.add_scalar("b", 2.0, 0)
    first.close()
    second.close()
    monkeypatch.undo()
    assert first.path != second.path
    assert sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(path) for path in (first.path, second.path)
    )
    assert all(".1700000000." in path for path in (first.path, second.path))
    assert sorted(_accumulate(tmp_path).Tags()["scalars"]) == ["a", "b"]


def test_one_event_holds_every_value_of_a_step(tmp_path):
    """`one_event`: many values, one TFRecord; TensorBoard reads each value as before."""
    with EventWriter(str(tmp_path)) as writer:
        with writer.one_event(step=4):
            writer.add_scalar("a/mean", 0.25, 4)
            writer.add_scalar("b/mean", -0.5, 4)
            writer.add_histogram("a/activations", [0.0, 1.0, 2.0], [3.0, 1.0], 4)
            writer.add_scalar("a/mean", 0.75, 5)  # another step: its own event
        writer.add_scalar("a/mean", 1.0, 6)
        path = writer.path
    events = list(EventFileLoader(path).Load())
    assert [len(e.summary.value) for e in events] == [0, 1, 3, 1]  # file version first
    assert [e.step for e in events[1:]] == [5, 4, 6]
    accumulator = _accumulate(tmp_path)
    assert sorted((e.step, e.value) for e in accumulator.Scalars("a/mean")) == [
        (4, 0.25), (5, 0.75), (6, 1.0)]
    assert [e.value for e in accumulator.Scalars("b/mean")] == [-0.5]
    assert _histogram(tmp_path, "a/activations")[1].bucket == [3.0, 1.0]


def test_the_sink_writes_one_event_per_read(tmp_path):
    from keras_initkit.stats.sinks import TensorBoardSink
    from keras_initkit.stats.summary import layer_record

    values = np.random.default_rng(0).standard_normal((16, 4)).astype("float32")
    sink = TensorBoardSink(str(tmp_path))
    for step in (1, 2, 3):
        records = [dataclasses.replace(layer_record(values, name, "tanh", bins=8), step=step)
                   for name in ("d1", "d2")]
        sink.write(records, [])
    path = sink.writer.path
    sink.close()
    events = list(EventFileLoader(path).Load())[1:]
    assert [e.step for e in events] == [1, 2, 3]
    assert all(len(e.summary.value) == 2 * 7 for e in events)  # 6 scalars + 1 histogram
    assert [e.step for e in _accumulate(tmp_path).Histograms("d2/activations")] == [1, 2, 3]
