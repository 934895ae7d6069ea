"""The esrgan engine with the committed ONNX files: tiling agreement, the converter, the real server."""

from __future__ import annotations

import hashlib
import json
from typing import Iterator

import grpc
import numpy as np
import pytest
import torch
from revive.v1 import upscaler_pb2, upscaler_pb2_grpc

from services.common.imaging import from_proto, to_proto
from services.common.server import ServiceServer
from services.upscaler.engines.esrgan import EsrganUpscaler, stem
from services.upscaler.engines.tiled_onnx import DEFAULT_MODELS_DIR, model_path
from services.upscaler.service import DEFINITION
from tests.cluster import channel
from tests.photos import portrait
from training.upscaler.convert import NPM_DIR, build, package_dir

#: Tiled vs untiled, in uint8 levels: feathering over a 32-pixel overlap
#: (measured: max 0.03 before rounding on held-out photos, so at most 1 after).
TILING_MAX_DIFF = 1
#: The committed ONNX vs the PyTorch rebuild, in 0..1 units (float32 reordering only).
EXPORT_MAX_DIFF = 1e-4


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return portrait(width=150, height=120, seed=3)


def test_tiled_and_untiled_outputs_agree(photo):
    tiled = EsrganUpscaler(tier="medium", tile=64, overlap=32, batch=3)
    whole = EsrganUpscaler(tier="medium", tile=1024, overlap=32)
    for factor in (2, 4):
        a, b = tiled.upscale(photo, factor), whole.upscale(photo, factor)
        assert a.shape == b.shape == (120 * factor, 150 * factor, 3)
        difference = np.abs(a.astype(int) - b.astype(int))
        assert difference.max() <= TILING_MAX_DIFF, f"x{factor}: seam of {difference.max()} levels"


def test_upscaled_photo_is_close_to_the_original_content(photo):
    """Downscaling the x4 result must give the photo back: the network adds detail, not drift."""
    out = EsrganUpscaler(tier="medium").upscale(photo, 4).astype(np.float32)
    back = out.reshape(120, 4, 150, 4, 3).mean(axis=(1, 3))
    assert np.abs(back - photo).mean() < 3


@pytest.mark.skipif(not package_dir(NPM_DIR, "medium").exists(),
                    reason="@upscalerjs/esrgan-medium not installed (training/upscaler/reference.sh)")
@pytest.mark.parametrize("factor", [2, 4])
def test_committed_onnx_matches_the_pytorch_rebuild(factor):
    import onnxruntime as ort

    rgb = np.random.default_rng(factor).random((1, 3, 20, 36), dtype=np.float32)
    with torch.no_grad():
        expected = build(NPM_DIR, "medium", factor)(torch.from_numpy(rgb)).numpy()
    session = ort.InferenceSession(str(model_path(DEFAULT_MODELS_DIR, stem("medium"), factor)),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"rgb": rgb})[0]
    assert np.abs(got - expected).max() <= EXPORT_MAX_DIFF


def test_manifest_describes_the_converted_files():
    manifest = json.loads((DEFAULT_MODELS_DIR / "upscaler" / "manifest.json").read_text())
    converted = {name: entry for name, entry in manifest["models"].items() if name.startswith("esrgan_")}
    assert converted
    for name, entry in converted.items():
        path = DEFAULT_MODELS_DIR / "upscaler" / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], f"{name} changed since conversion"
        assert manifest["reference_check"]["results"][name]["pass"]
    assert (DEFAULT_MODELS_DIR / "upscaler" / "LICENSE").read_text().startswith("MIT License")


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceServer]:
    config = DEFINITION.parse(["--port", "0", "--metrics-port", "-1", "--threads", "1", "--engines", "esrgan,lanczos"])
    running = ServiceServer(DEFINITION, config).start()
    running.wait_until_serving(60)
    yield running
    running.stop(0)


def upscale(server: ServiceServer, rgb: np.ndarray, factor: int, engine: str = "") -> upscaler_pb2.UpscaleResponse:
    stub = upscaler_pb2_grpc.UpscalerStub(channel(server.port))
    return stub.Upscale(upscaler_pb2.UpscaleRequest(image=to_proto(rgb), factor=factor, engine=engine))


def test_server_upscales_with_esrgan(server, photo):
    reply = upscale(server, photo[:40, :50], 4)
    assert reply.engine == "esrgan"
    assert from_proto(reply.image).shape == (160, 200, 3)
    assert upscale(server, photo[:40, :50], 2, engine="lanczos").engine == "lanczos"


@pytest.mark.parametrize("size, factor", [((1025, 8), 4), ((8, 2049), 2)])
def test_server_refuses_results_over_4096(server, size, factor):
    with pytest.raises(grpc.RpcError) as error:
        upscale(server, np.zeros((*size, 3), np.uint8), factor)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "4096" in error.value.details()
