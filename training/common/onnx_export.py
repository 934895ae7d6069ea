"""Writing a trained model as ONNX, checked before anything serves it.

Every Revive model is exported the same way: batch, height and width are
dynamic (one file serves every size, and TensorRT can build optimisation
profiles over them), and the file is run by ONNX Runtime on a batch and shape
the export was not traced with and compared with torch eager, so a mis-traced
graph never reaches models/.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch.export import Dim

OPSET = 18


def quiet_exporter() -> None:
    """Silence the exporter's per-pass chatter, which would bury a converter's own log lines."""
    for name in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # torch.export's own use of a pytree API it deprecated: nothing a caller can act on.
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)


def export_checked(model: torch.nn.Module, path: Path, example: torch.Tensor, probe: torch.Tensor, input_name: str,
                   output_names: Sequence[str], tolerance: float) -> float:
    """Write `model` (one NCHW input) to `path`; return the worst |ONNX - torch| on `probe`, raising above `tolerance`."""
    model = model.eval()
    dynamic = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}  # batch, height, width
    torch.onnx.export(model, (example,), str(path), input_names=[input_name], output_names=list(output_names),
                      dynamic_shapes=(dynamic,), opset_version=OPSET, external_data=False, verbose=False)
    onnx.checker.check_model(onnx.load(str(path)))
    with torch.no_grad():
        expected = model(probe)
    expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {input_name: probe.numpy()})
    if [a.shape for a in got] != [e.shape for e in expected]:
        raise RuntimeError(f"{path.name}: ONNX shapes {[a.shape for a in got]} differ from torch's")
    worst = max(float(np.abs(a - e).max()) for a, e in zip(got, expected))
    if worst > tolerance:
        raise RuntimeError(f"{path.name}: ONNX and torch disagree by {worst} (tolerance {tolerance})")
    return worst
