"""The pure parts of the peer benchmark harness (loadtests/peers): no venvs, no servers.

Golden bytes were written by tritonclient 2.51.0's generated classes
(``ModelConfigResponse`` / ``ModelMetadataResponse`` with the same content,
``SerializeToString()``), so the hand encoder is checked byte for byte against them.
"""

from __future__ import annotations

import doctest
import json
import sys
from pathlib import Path

import pytest

# loadtests/ is run from the checkout (python -m loadtests...), not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadtests.peers import mlserver_peer, oip_wire, perf, report
from loadtests.peers.model_dir import ModelDir
from loadtests.peers.perf import Measurement
from loadtests.peers.report import Row

METADATA = {
    "name": "fraud",
    "versions": ["1"],
    "platform": "xgboost",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 24]}],
    "outputs": [{"name": "predict_proba", "datatype": "FP32", "shape": [-1, 2]}],
}
METADATA_BYTES = bytes.fromhex(
    "0a0566726175641201311a077867626f6f7374221a0a05696e7075741204465033321a0bffffffffffff"
    "ffffff01182a220a0d707265646963745f70726f62611204465033321a0bffffffffffffffffff0102"
)
CONFIG_BYTES = bytes.fromhex(
    "0a480a05667261756412077867626f6f73742a160a05696e707574100b220bffffffffffffffffff0118"
    "321e0a0d707265646963745f70726f6261100b1a0bffffffffffffffffff0102"
)
# perf_analyzer 2.51.0 CSVs as written here: KServe (client columns only) and Triton
# (server-side columns too).
KSERVE_CSV = (
    "Concurrency,Inferences/Second,Client Send,Client Recv,"
    "p50 latency,p90 latency,p95 latency,p99 latency\n"
    "1,881.555,3,1,1069,1371,1584,2442\n"
)
TRITON_CSV = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
    "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
    "p50 latency,p90 latency,p95 latency,p99 latency\n"
    "8,493.356,7,988,6893,90,7247,964,2,15216,22947,26322,31772\n"
)


@pytest.mark.parametrize("module", [perf, report, oip_wire])
def test_docstring_examples(module: object) -> None:
    failures, _ = doctest.testmod(module, raise_on_error=False, verbose=False)  # type: ignore[arg-type]
    assert failures == 0


# -- ModelConfig built from ModelMetadata --------------------------------------------


def test_model_config_from_metadata_keeps_names_types_and_dims() -> None:
    config = oip_wire.model_config_from_metadata(METADATA)
    assert config == {
        "name": "fraud",
        "platform": "xgboost",
        "max_batch_size": 0,
        "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 24]}],
        "output": [{"name": "predict_proba", "data_type": "TYPE_FP32", "dims": [-1, 2]}],
    }


def test_model_config_response_bytes_match_tritons_classes() -> None:
    config = oip_wire.model_config_from_metadata(METADATA)
    assert oip_wire.encode_model_config_response(config) == CONFIG_BYTES


def test_model_metadata_response_decodes_and_round_trips() -> None:
    assert oip_wire.decode_model_metadata_response(METADATA_BYTES) == METADATA
    assert oip_wire.encode_model_metadata_response(METADATA) == METADATA_BYTES


def test_unpacked_shape_and_unknown_fields_are_read() -> None:
    # shape as unpacked varints (field 3, wire type 0) plus an unknown fixed64 field
    tensor = b"\x0a\x01x\x12\x04FP32\x18\x01\x18\x18\x49" + b"\x00" * 8
    meta = oip_wire.decode_model_metadata_response(b"\x0a\x01m\x22" + bytes([len(tensor)]) + tensor)
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [1, 24]}]


def test_request_name_version_round_trip() -> None:
    data = oip_wire.encode_name_version("fraud", "2")
    assert data == b"\x0a\x05fraud\x12\x012"
    assert oip_wire.decode_name_version(data) == ("fraud", "2")


def test_bytes_datatype_is_tritons_string_and_unknown_datatype_is_refused() -> None:
    meta = {**METADATA, "inputs": [{"name": "s", "datatype": "BYTES", "shape": [-1]}]}
    assert oip_wire.model_config_from_metadata(meta)["input"][0]["data_type"] == "TYPE_STRING"
    bad = {**METADATA, "inputs": [{"name": "s", "datatype": "FP8", "shape": [-1]}]}
    with pytest.raises(oip_wire.WireError, match="FP8"):
        oip_wire.model_config_from_metadata(bad)


def test_truncated_bytes_are_a_wire_error() -> None:
    with pytest.raises(oip_wire.WireError):
        oip_wire.decode_model_metadata_response(METADATA_BYTES[:-3])


# -- perf_analyzer CSV and command ----------------------------------------------------


def test_csv_without_server_columns() -> None:
    (m,) = perf.parse_csv(KSERVE_CSV)
    assert (m.concurrency, m.throughput) == (1, 881.555)
    assert (m.p50_us, m.p90_us, m.p95_us, m.p99_us) == (1069, 1371, 1584, 2442)
    assert dict(m.extra) == {"Client Send": "3", "Client Recv": "1"}


def test_csv_with_triton_server_columns() -> None:
    (m,) = perf.parse_csv(TRITON_CSV + "\n")
    assert (m.concurrency, m.throughput, m.p50_us, m.p99_us) == (8, 493.356, 15216, 31772)
    assert m.extra["Server Queue"] == "6893"


def test_csv_missing_a_percentile_is_refused() -> None:
    with pytest.raises(ValueError, match="p99 latency"):
        perf.parse_csv(
            "Concurrency,Inferences/Second,p50 latency,p90 latency,p95 latency\n1,2,3,4,5\n"
        )
    with pytest.raises(ValueError, match="no data row"):
        perf.parse_csv(KSERVE_CSV.splitlines()[0] + "\n")


def test_shape_for_unbatched_config_from_metadata() -> None:
    config = {"config": oip_wire.model_config_from_metadata(METADATA)}
    assert perf.shape_args(config, 24) == ["--shape", "input:1,24"]
    assert perf.shape_args(config, 24, only_input="other") == []


def test_command_caps_threads_and_carries_headers_and_fallback() -> None:
    cmd = perf.command(
        "pa",
        url="127.0.0.1:9",
        model="m",
        concurrency=32,
        interval_ms=5000,
        stability_pct=25,
        max_trials=6,
        csv_path="o.csv",
        shapes=["--shape", "input:1,24"],
        headers=["authorization:Bearer t"],
        request_count=900,
    )
    joined = " ".join(cmd)
    assert "--concurrency-range 32:32 --max-threads 32" in joined
    assert "--request-count 900" in joined and "-H authorization:Bearer t" in joined
    assert cmd[-2:] == ["-f", "o.csv"]
    assert "Bearer" not in " ".join(perf.redact(cmd))


def test_fallback_sized_from_verbose_passes() -> None:
    out = (
        "  Pass [1] throughput: 125.779 infer/sec. Avg latency: 7916 usec (std 9360 usec).\n"
        "  Pass [2] throughput: 153.15 infer/sec. Avg latency: 6371 usec (std 3421 usec).\n"
        "  Pass [3] throughput: 58.2405 infer/sec. Avg latency: 17567 usec (std 37229 usec).\n"
        "Failed to obtain stable measurement within 3 measurement windows for concurrency 1.\n"
    )
    assert perf.passes(out)[1] == (153.15, 6371)
    assert perf.fallback_request_count(out, interval_ms=1000) == 174  # slowest window x 3
    assert perf.fallback_request_count("error: connection refused", 1000) is None


# -- results table and JSON ----------------------------------------------------------


def test_table_and_json_round_trip() -> None:
    (m,) = perf.parse_csv(TRITON_CSV)
    rows = [
        Row("pytriton", 8, m, command=("pa",)),
        Row("mlserver", 32, Measurement(32, 1234.5, 9000, 0, 0, 25000, {}), stable=False),
        Row("kserve", 1, None, error="did not start"),
    ]
    assert report.markdown_table(rows).splitlines()[2:] == [
        "| pytriton | 8 | 493.4 | 15.22 | 31.77 |",
        "| mlserver | 32 | 1,234.5 (unstable) | 9.00 | 25.00 |",
        "| kserve | 1 | failed: did not start | | |",
    ]
    data = json.loads(json.dumps(report.rows_json(rows)))
    assert data[0]["p99_ms"] == 31.772 and data[0]["throughput_rps"] == 493.4
    assert report.row_from_json(data[1]).measurement == rows[1].measurement
    assert report.row_from_json(data[2]).error == "did not start"


# -- model directory and MLServer settings --------------------------------------------


def _model_dir(tmp_path: Path, xgb_json: dict[str, object] | None = None) -> ModelDir:
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "model.xgb.json").write_text(json.dumps(xgb_json or {"learner": {}}))
    meta = {
        "model_name": "fraud xgb/v1",
        "feature_names": ["a", "b", "c"],
        "input_name": "input",
        "output_name": "probabilities",
        "output_index": 1,
    }
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    return ModelDir.load(tmp_path)


def test_model_dir_reads_metadata_and_makes_a_safe_name(tmp_path: Path) -> None:
    model = _model_dir(tmp_path)
    assert (model.model_name, model.width, model.output_index) == ("fraud-xgb-v1", 3, 1)
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.onnx"):
        ModelDir.load(tmp_path)


def test_mlserver_repository_has_batching_proba_and_a_classifier(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    model = _model_dir(tmp_path / "m", {"learner": {"attributes": {}}})
    repo = mlserver_peer.write_repository(
        model,
        tmp_path / "work",
        grpc_port=1,
        http_port=2,
        metrics_port=3,
        parallel_workers=1,
        max_batch_size=32,
        max_batch_time_s=0.001,
    )
    settings = json.loads((repo / "settings.json").read_text())
    assert settings["host"] == "127.0.0.1" and settings["debug"] is False
    folder = repo / "fraud-xgb-v1"
    ms = json.loads((folder / "model-settings.json").read_text())
    assert (ms["max_batch_size"], ms["max_batch_time"]) == (32, 0.001)
    assert ms["outputs"][0]["name"] == "predict_proba"
    assert ms["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 3]}
    saved = json.loads((folder / "model.json").read_text())
    assert json.loads(saved["learner"]["attributes"]["scikit_learn"]) == {
        "_estimator_type": "classifier"
    }
