"""Reading TFJS layers-format weights: a JSON manifest plus binary shards.

Both converters of pretrained weights that npm packages ship (face-api's four
networks, upscalerjs' ESRGAN) read them here. The uint8 quantisation recorded
is kept so the face models' ONNX files stay as small as the TFJS originals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16}


@dataclass(frozen=True)
class Quantization:
    """Affine uint8/uint16 quantisation: value = q * scale + min."""

    dtype: str
    scale: float
    min: float


@dataclass(frozen=True)
class Weight:
    name: str
    #: Dequantised float32 values in TFJS layout (HWIO filters, [in, out] matrices).
    value: np.ndarray
    #: The stored integers and their parameters, or None for plain float32.
    quantized: np.ndarray | None
    quantization: Quantization | None


def load_weights(manifest_path: Path) -> dict[str, Weight]:
    """All weights a `*-weights_manifest.json` describes, by TFJS name."""
    manifest_path = Path(manifest_path)
    return decode_weights(json.loads(manifest_path.read_text()), manifest_path.parent)


def decode_weights(groups: list[dict], shard_dir: Path) -> dict[str, Weight]:
    """The weights of manifest `groups` (a weights manifest, or a model.json's "weightsManifest")."""
    weights: dict[str, Weight] = {}
    for group in groups:
        buffer = b"".join((shard_dir / shard).read_bytes() for shard in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"], dtype=np.int64))
            quant = spec.get("quantization")
            stored = np.dtype(_DTYPES[quant["dtype"] if quant else spec["dtype"]])
            raw = np.frombuffer(buffer, stored, count, offset).reshape(spec["shape"])
            offset += count * stored.itemsize
            if quant:
                q = Quantization(quant["dtype"], float(quant["scale"]), float(quant["min"]))
                # float64 arithmetic then float32, as tfjs-core's io.decodeWeights does.
                value = (raw.astype(np.float64) * q.scale + q.min).astype(np.float32)
                weights[spec["name"]] = Weight(spec["name"], value, raw.copy(), q)
            else:
                weights[spec["name"]] = Weight(spec["name"], raw.astype(np.float32), None, None)
        if offset != len(buffer):
            raise ValueError(f"{shard_dir}: read {offset} of {len(buffer)} bytes; manifest and shards disagree")
    return weights
