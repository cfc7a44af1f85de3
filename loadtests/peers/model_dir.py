"""The model directory every peer serves from, and what its ``metadata.json`` says.

Layout (the stand-in of :mod:`loadtests.peers.make_standin_model` and the artifact of
``riskstream train-baseline`` alike)::

    model.onnx       float32 input [N, F] named input_name; probabilities in output_name
    model.xgb.json   XGBoost's own saved model
    metadata.json    feature_names, input_name, output_name, output_index, model_name

Kernel: reads one JSON file, imports nothing beyond the standard library, so it loads
in every peer's environment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ONNX_FILE, XGB_FILE, METADATA_FILE = "model.onnx", "model.xgb.json", "metadata.json"
# Names every server accepts in a URL path and a Triton model repository.
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ModelDir:
    """One model, as the peers see it.

    Attributes:
        path: the directory.
        model_name: name to serve the model under (``metadata.json``'s ``model_name``).
        feature_names: input columns, in order; their count is the input width.
        input_name: ONNX input tensor name.
        output_name: ONNX output tensor holding class probabilities.
        output_index: column of the positive class in ``output_name``.
    """

    path: Path
    model_name: str
    feature_names: tuple[str, ...]
    input_name: str
    output_name: str
    output_index: int

    @property
    def width(self) -> int:
        """Number of features a row has."""
        return len(self.feature_names)

    @property
    def onnx_path(self) -> Path:
        """``model.onnx``."""
        return self.path / ONNX_FILE

    @property
    def xgb_path(self) -> Path:
        """``model.xgb.json``."""
        return self.path / XGB_FILE

    @classmethod
    def load(cls, path: Path | str) -> ModelDir:
        """Read ``metadata.json`` of a model directory.

        Raises:
            FileNotFoundError: the directory lacks one of the three files.
            ValueError: ``metadata.json`` lacks a field or has no features.
        """
        path = Path(path)
        for name in (ONNX_FILE, XGB_FILE, METADATA_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name} is missing")
        meta = json.loads((path / METADATA_FILE).read_text())
        missing = [
            k
            for k in ("model_name", "feature_names", "input_name", "output_name", "output_index")
            if k not in meta
        ]
        if missing:
            raise ValueError(f"{path / METADATA_FILE} lacks {', '.join(missing)}")
        if not meta["feature_names"]:
            raise ValueError(f"{path / METADATA_FILE}: feature_names is empty")
        return cls(
            path=path,
            model_name=_SAFE_NAME.sub("-", str(meta["model_name"])),
            feature_names=tuple(meta["feature_names"]),
            input_name=str(meta["input_name"]),
            output_name=str(meta["output_name"]),
            output_index=int(meta["output_index"]),
        )
