"""Serving: the exported formats, their checks, and the predictor that loads them.

Imports run one way (no module imports one above it):

    runtime     ONNX Runtime session setup and the export's file names (torch-free)
    predictor   Predictor: predict / suggest on ONNX Runtime (torch-free) or PyTorch
    graphs      the torch graphs: MLP, end-to-end, candidates; the backbone rebuilt
    metadata    metadata.json: architecture, input layout, signatures, provenance
    writers     state dict, TorchScript, ONNX files
    testset     the real rows the export verifies on
    parity      every format against the PyTorch model
    latency     p50/p95 per format and runtime
    suggestcheck  the top suggestion vs VTracer's defaults, with real conversions
    card        MODEL_CARD.md
    export      the export run: composes the above; the report's flat metrics; MLflow
"""
