"""Writing a trained model as ONNX, checked before anything serves it.

Every Revive model is exported the same way: batch, height and width are
dynamic (one file serves every size, and TensorRT can build optimisation
profiles over them), unless the network only has a meaning at one size (a
landmark regressor's dense head: `fixed_size`), and the file is run by ONNX Runtime on a batch and shape
the export was not traced with and compared with torch eager, so a mis-traced
graph never reaches models/.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
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
                   output_names: Sequence[str], tolerance: float,
                   extra_inputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                   fixed_size: bool = False) -> float:
    """Write `model` (one NCHW input, then `extra_inputs`: name -> (example, probe), dynamic in their batch only)
    to `path`; return the worst |ONNX - torch| on the probes, raising above `tolerance`. With `fixed_size` the
    input's height and width stay the example's (the probe's must match)."""
    model = model.eval()
    extra = dict(extra_inputs or {})
    dynamic = {0: Dim.DYNAMIC} if fixed_size else {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
    examples = (example, *(pair[0] for pair in extra.values()))
    probes = (probe, *(pair[1] for pair in extra.values()))
    names = [input_name, *extra]
    torch.onnx.export(model, examples, str(path), input_names=names, output_names=list(output_names),
                      dynamic_shapes=(dynamic, *({0: Dim.DYNAMIC} for _ in extra)), opset_version=OPSET,
                      external_data=False, verbose=False)
    onnx.checker.check_model(onnx.load(str(path)))
    with torch.no_grad():
        expected = model(*probes)
    expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
    feeds = {name: tensor.numpy() for name, tensor in zip(names, probes)}
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    if [a.shape for a in got] != [e.shape for e in expected]:
        raise RuntimeError(f"{path.name}: ONNX shapes {[a.shape for a in got]} differ from torch's")
    worst = max(float(np.abs(a - e).max()) for a, e in zip(got, expected))
    if worst > tolerance:
        raise RuntimeError(f"{path.name}: ONNX and torch disagree by {worst} (tolerance {tolerance})")
    return worst
