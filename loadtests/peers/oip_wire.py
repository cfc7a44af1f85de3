"""The few Open Inference Protocol v2 messages the harness builds or reads, by hand.

perf_analyzer calls Triton's ``ModelConfig`` RPC before it profiles, and MLServer and
KServe do not implement it. The harness answers that one RPC with a config built from
the server's own ``ModelMetadata`` (see :mod:`loadtests.peers.model_config_rpc`). The
messages involved are small, so they are encoded and decoded here directly in the
protobuf wire format: no generated code, no ``protobuf`` runtime, so the same module
works in every peer's environment (each pins its own protobuf) and in the tests.

Field numbers are those of Triton's ``grpc_service.proto`` and ``model_config.proto``
(checked against tritonclient 2.51.0's generated classes).

Kernel: pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

#: Full gRPC method names of the service (package ``inference``).
SERVICE = "inference.GRPCInferenceService"
MODEL_CONFIG_METHOD = f"/{SERVICE}/ModelConfig"
MODEL_METADATA_METHOD = f"/{SERVICE}/ModelMetadata"

#: OIP datatype string -> Triton ``DataType`` enum value (model_config.proto).
TRITON_DATA_TYPES: Mapping[str, int] = {
    "BOOL": 1,
    "UINT8": 2,
    "UINT16": 3,
    "UINT32": 4,
    "UINT64": 5,
    "INT8": 6,
    "INT16": 7,
    "INT32": 8,
    "INT64": 9,
    "FP16": 10,
    "FP32": 11,
    "FP64": 12,
    "BYTES": 13,
    "BF16": 14,
}

_VARINT, _LEN = 0, 2


class WireError(ValueError):
    """Bytes that are not the protobuf message expected."""


# -- encoding -----------------------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0:  # int32/int64 negatives are 10-byte two's complement varints
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _len_field(field: int, payload: bytes) -> bytes:
    return _tag(field, _LEN) + _varint(len(payload)) + payload


def _str_field(field: int, value: str) -> bytes:
    return _len_field(field, value.encode()) if value else b""


def _int_field(field: int, value: int) -> bytes:
    return _tag(field, _VARINT) + _varint(value) if value else b""


def _packed_ints(field: int, values: Sequence[int]) -> bytes:
    return _len_field(field, b"".join(_varint(v) for v in values)) if values else b""


# -- decoding -----------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field; skips fixed32/fixed64."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
            yield field, wire_type, value
        elif wire_type == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise WireError("truncated length-delimited field")
            yield field, wire_type, data[pos : pos + size]
            pos += size
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(wire_type: int, value: int | bytes) -> list[int]:
    """A repeated int64 field, packed (LEN) or not (VARINT)."""
    if isinstance(value, int):
        return [_signed64(value)]
    out, pos = [], 0
    while pos < len(value):
        item, pos = _read_varint(value, pos)
        out.append(_signed64(item))
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise WireError("expected a string field")
    return value.decode()


# -- the messages -------------------------------------------------------------------


def encode_name_version(name: str, version: str = "") -> bytes:
    """``ModelMetadataRequest`` / ``ModelConfigRequest`` (both are name=1, version=2)."""
    return _str_field(1, name) + _str_field(2, version)


def decode_name_version(data: bytes) -> tuple[str, str]:
    """Inverse of :func:`encode_name_version`.

    Raises:
        WireError: the bytes are not such a message.
    """
    name = version = ""
    for field, _, value in _fields(data):
        if field == 1:
            name = _text(value)
        elif field == 2:
            version = _text(value)
    return name, version


def _decode_tensor_metadata(data: bytes) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "", "datatype": "", "shape": []}
    for field, wire_type, value in _fields(data):
        if field == 1:
            tensor["name"] = _text(value)
        elif field == 2:
            tensor["datatype"] = _text(value)
        elif field == 3:
            tensor["shape"].extend(_ints(wire_type, value))
    return tensor


def decode_model_metadata_response(data: bytes) -> dict[str, Any]:
    """``ModelMetadataResponse`` as the JSON shape of the OIP REST API.

    Raises:
        WireError: the bytes are not such a message.
    """
    meta: dict[str, Any] = {"name": "", "versions": [], "platform": "", "inputs": [], "outputs": []}
    for field, _, value in _fields(data):
        if field == 1:
            meta["name"] = _text(value)
        elif field == 2:
            meta["versions"].append(_text(value))
        elif field == 3:
            meta["platform"] = _text(value)
        elif field in (4, 5) and isinstance(value, bytes):
            key = "inputs" if field == 4 else "outputs"
            meta[key].append(_decode_tensor_metadata(value))
    return meta


def encode_model_metadata_response(meta: Mapping[str, Any]) -> bytes:
    """Inverse of :func:`decode_model_metadata_response` (used by tests and fakes)."""

    def tensor(t: Mapping[str, Any]) -> bytes:
        return (
            _str_field(1, t["name"])
            + _str_field(2, t["datatype"])
            + _packed_ints(3, [int(d) for d in t["shape"]])
        )

    out = _str_field(1, meta.get("name", ""))
    out += b"".join(_str_field(2, v) for v in meta.get("versions", ()))
    out += _str_field(3, meta.get("platform", ""))
    out += b"".join(_len_field(4, tensor(t)) for t in meta.get("inputs", ()))
    out += b"".join(_len_field(5, tensor(t)) for t in meta.get("outputs", ()))
    return out


def model_config_from_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The Triton model config that describes a model exactly as its metadata does.

    ``max_batch_size`` is 0: the metadata's shapes already carry the batch dimension
    (``[-1, 24]``), so perf_analyzer is told the full shape (``--shape input:1,24``)
    and sends one row a request with ``-b 1``. Only the fields perf_analyzer reads are
    filled in (name, platform, inputs, outputs).

    Args:
        meta: ``ModelMetadataResponse`` as a dict (:func:`decode_model_metadata_response`).

    Returns:
        ``ModelConfig`` as a dict in the JSON field names Triton prints.

    Raises:
        WireError: a tensor has a datatype Triton has no enum value for.
    """

    def tensor(t: Mapping[str, Any]) -> dict[str, Any]:
        datatype = str(t["datatype"]).upper()
        if datatype not in TRITON_DATA_TYPES:
            raise WireError(f"tensor {t['name']!r}: unknown datatype {t['datatype']!r}")
        return {
            "name": t["name"],
            "data_type": f"TYPE_{'STRING' if datatype == 'BYTES' else datatype}",
            "dims": [int(d) for d in t["shape"]],
        }

    return {
        "name": meta["name"],
        "platform": meta.get("platform", ""),
        "max_batch_size": 0,
        "input": [tensor(t) for t in meta.get("inputs", ())],
        "output": [tensor(t) for t in meta.get("outputs", ())],
    }


def _triton_enum(data_type: str) -> int:
    name = data_type.removeprefix("TYPE_")
    return TRITON_DATA_TYPES["BYTES" if name == "STRING" else name]


def encode_model_config_response(config: Mapping[str, Any]) -> bytes:
    """``ModelConfigResponse{config: ModelConfig}`` for :func:`model_config_from_metadata`'s dict.

    Returns:
        The serialized message, as Triton's generated classes would write it.
    """
    inputs = b"".join(
        _len_field(
            5,
            _str_field(1, t["name"])
            + _int_field(2, _triton_enum(t["data_type"]))
            + _packed_ints(4, t["dims"]),
        )
        for t in config.get("input", ())
    )
    outputs = b"".join(
        _len_field(
            6,
            _str_field(1, t["name"])
            + _int_field(2, _triton_enum(t["data_type"]))
            + _packed_ints(3, t["dims"]),
        )
        for t in config.get("output", ())
    )
    body = (
        _str_field(1, config["name"])
        + _str_field(2, config.get("platform", ""))
        + _int_field(4, int(config.get("max_batch_size", 0)))
        + inputs
        + outputs
    )
    return _len_field(1, body)
