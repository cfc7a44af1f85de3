"""Peer benchmark over the Open Inference Protocol v2 (gRPC), driven by perf_analyzer.

MLServer (mlserver-xgboost), Triton through PyTriton and KServe's ModelServer (ONNX
Runtime) each serve the same model from their own environment (``setup.sh``); riskstream
is driven where it already runs. ``run.py`` is the entry point; the pure parts
(``oip_wire``, ``perf``, ``report``, ``model_dir``) import only the standard library.
"""
