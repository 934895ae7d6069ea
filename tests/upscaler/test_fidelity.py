"""The fidelity engine with the committed model: beats bicubic on a held-out photo, tiles
without seams, matches its PyTorch weights, and is the upscaler service's default."""

from __future__ import annotations

import hashlib
import json
from typing import Iterator

import numpy as np
import pytest
import torch
from revive.v1 import upscaler_pb2, upscaler_pb2_grpc

from bench.upscaler_bench import psnr_ssim
from services.common.config import ServiceConfig
from services.common.imaging import from_proto, to_proto
from services.common.server import ServiceServer
from services.upscaler.engines.fidelity import STEM, FidelityUpscaler
from services.upscaler.engines.tiled_onnx import DEFAULT_MODELS_DIR, model_path
from services.upscaler.service import DEFINITION
from tests.cluster import channel, start_service
from training.upscaler import heldout
from training.upscaler.dataset import downscale
from training.upscaler.model import FidelitySR

#: Tiled vs untiled, in uint8 levels (feathered 32-pixel overlaps; the receptive field is 19 pixels). In int8
#: a float difference at a seam can tip one activation's rounding, worth a level more on a rare pixel.
TILING_MAX_DIFF = {"float32": 1, "int8": 2}
#: Least agreement between the int8 and float32 models on a held-out photo (RGB PSNR, dB).
INT8_AGREEMENT_DB = 45.0
#: Smallest Y-PSNR gain over bicubic accepted on the test crop; the bench measures the real figure.
MIN_GAIN_DB = {2: 1.0, 4: 0.8}


@pytest.fixture(scope="module")
def engine() -> FidelityUpscaler:
    return FidelityUpscaler()


@pytest.mark.parametrize("factor", [2, 4])
def test_beats_bicubic_on_a_held_out_photo(engine, factor):
    import cv2

    truth = heldout.load("camera")[128:384, 128:384]
    small = downscale(truth, factor)
    bicubic = cv2.resize(small, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    gain = psnr_ssim(truth, engine.upscale(small, factor), factor)[0] - psnr_ssim(truth, bicubic, factor)[0]
    assert gain >= MIN_GAIN_DB[factor], f"x{factor}: {gain:+.2f} dB over bicubic"


@pytest.mark.parametrize("precision", ["float32", "int8"])
@pytest.mark.parametrize("factor", [2, 4])
def test_tiled_and_untiled_outputs_agree(factor, precision):
    photo = heldout.load("coffee")[:120, :150]
    tiled = FidelityUpscaler(tile=48, overlap=32, batch=3, precision=precision).upscale(photo, factor)
    whole = FidelityUpscaler(tile=1024, overlap=32, precision=precision).upscale(photo, factor)
    assert tiled.shape == whole.shape == (120 * factor, 150 * factor, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= TILING_MAX_DIFF[precision]


@pytest.mark.parametrize("factor", [2, 4])
def test_cpu_serves_the_int8_model_and_it_agrees_with_float32(engine, factor):
    assert engine.models[factor].name == f"{STEM}_x{factor}.int8"  # the default, auto, on the CPU provider
    floating = FidelityUpscaler(precision="float32")
    assert floating.models[factor].name == f"{STEM}_x{factor}"
    photo = heldout.load("astronaut")[100:260, 150:310]
    error = np.mean((engine.upscale(photo, factor).astype(float) - floating.upscale(photo, factor)) ** 2)
    assert 10 * np.log10(255 ** 2 / error) >= INT8_AGREEMENT_DB


def test_asking_for_int8_without_a_quantized_model_is_a_clear_error(tmp_path):
    (tmp_path / "upscaler").mkdir()
    for factor in (2, 4):
        path = model_path(DEFAULT_MODELS_DIR, STEM, factor)
        (tmp_path / "upscaler" / path.name).write_bytes(path.read_bytes())
    config = ServiceConfig(models_dir=tmp_path, engines=("fidelity",))
    with pytest.raises(FileNotFoundError, match="no fidelity_x2.int8.onnx"):
        FidelityUpscaler(config, precision="int8")
    assert FidelityUpscaler(config).models[2].name == f"{STEM}_x2"  # auto falls back to float32


@pytest.mark.parametrize("factor", [2, 4])
def test_onnx_matches_the_committed_weights(factor):
    import onnxruntime as ort

    path = model_path(DEFAULT_MODELS_DIR, STEM, factor)
    state = torch.load(path.with_suffix(".pt"), weights_only=True)
    model = FidelitySR.from_state(factor, state).eval()
    rgb = np.random.default_rng(factor).random((2, 3, 20, 36), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(rgb)).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"rgb": rgb})[0]
    assert np.abs(got - expected).max() <= 1e-4


def test_manifest_records_provenance_and_figures():
    manifest = json.loads((DEFAULT_MODELS_DIR / "upscaler" / "manifest.json").read_text())
    for factor in (2, 4):
        entry = manifest["models"][f"{STEM}_x{factor}"]
        folder = DEFAULT_MODELS_DIR / "upscaler"
        for file, digest in ((entry["file"], entry["sha256"]), (entry["weights"]["file"], entry["weights"]["sha256"])):
            assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest, f"{file} changed since export"
        assert entry["source"]["trained_by"] and entry["source"]["commands"] and entry["source"]["data"]["train"]
        quantized = manifest["models"][f"{STEM}_x{factor}.int8"]
        assert quantized["quantized_from"]["sha256"] == entry["sha256"], "re-quantize after exporting a new model"
        assert hashlib.sha256((folder / quantized["file"]).read_bytes()).hexdigest() == quantized["sha256"]
        assert quantized["eval"]["y_psnr_db"]["int8"] > quantized["eval"]["y_psnr_db"]["opencv_bicubic"]
    assert "fidelity" in manifest["eval"]["quality"]["scores"]["x4"], "bench figures not recorded"


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceServer]:
    running = start_service(DEFINITION)  # every engine, the definition's default first
    yield running
    running.stop(0)


def test_service_default_is_fidelity_and_realesrgan_is_served_by_name(server):
    stub = upscaler_pb2_grpc.UpscalerStub(channel(server.port))
    photo = heldout.load("chelsea")[:40, :50]
    reply = stub.Upscale(upscaler_pb2.UpscaleRequest(image=to_proto(photo), factor=4))
    assert reply.engine == "fidelity"  # the CPU default, by the rule in services/upscaler/README.md
    assert from_proto(reply.image).shape == (160, 200, 3)
    reply = stub.Upscale(upscaler_pb2.UpscaleRequest(image=to_proto(photo), factor=4, engine="realesrgan"))
    assert reply.engine == "realesrgan" and from_proto(reply.image).shape == (160, 200, 3)
