"""The GPU check: every model on CPU, CUDA and TensorRT side by side, and one photo end to end.

Run it first whenever a GPU is at hand (`make gpu-check`; about 5 minutes on
an H100, most of it TensorRT builds). For each committed ONNX model it builds
(or reuses) the TensorRT engine through ONNX Runtime's TensorRT provider, the
same way the services do (FP16, engine and timing caches), then times the
model on every provider this onnxruntime build has, at the shape the service
runs it at. The end-to-end row restores one photo (detect, generate, upscale
x2) with the learned engines on each provider. A provider the build lacks, or
that falls back to CPU, is reported as such, never timed as if it ran.

`--torch` measures the same learned networks in PyTorch instead (CPU vs
CUDA, float32 vs bfloat16, channels-last): the path for a GPU machine whose
Python has CUDA PyTorch but no onnxruntime-gpu or TensorRT (the lent machines:
onnxruntime-gpu is 340 MB, over what a call can carry, and TensorRT's PyPI
package downloads from NVIDIA at install). There: `python3 -m bench.gpu_check
--torch`, with PYTHONPATH set to the repository and build/gen.

The table goes to stdout and to `--out` (Markdown), ready for the README.

python -m bench.gpu_check [--out var/gpu-check.md] [--repeats 10] [--quick] [--torch]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.timing import median_seconds

# Only numpy at the top: `--torch` runs where the services' runtime (onnxruntime, gRPC code) may be missing
# or older, so each path imports what it needs.
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
PROVIDERS = ("cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class Case:
    """One model at the input shape its service feeds it."""

    name: str
    path: str
    input: str
    shape: tuple[int, ...]


def cases() -> tuple[Case, ...]:
    """Every committed model, at the shape its service feeds it."""
    from services.generator.planes import CHANNELS

    return (
        Case("detector unet, 1152² tile", "detector/damage_unet.onnx", "rgb", (1, 3, 1152, 1152)),
        Case("generator, 288x384 working size", "generator/restoration.onnx", "planes", (1, CHANNELS, 288, 384)),
        Case("upscaler fidelity x2, 256² tile", "upscaler/fidelity_x2.onnx", "rgb", (1, 3, 256, 256)),
        Case("upscaler fidelity x4, 256² tile", "upscaler/fidelity_x4.onnx", "rgb", (1, 3, 256, 256)),
        Case("upscaler fidelity x2 int8 (the CPU default), 256² tile", "upscaler/fidelity_x2.int8.onnx", "rgb",
             (1, 3, 256, 256)),
        Case("upscaler esrgan x4, 256² tile", "upscaler/esrgan_medium_x4.onnx", "rgb", (1, 3, 256, 256)),
        Case("faces: detector", "faces/tiny_face_detector.onnx", "image", (1, 416, 416, 3)),
        Case("faces: landmarks", "faces/face_landmark_68.onnx", "image", (1, 112, 112, 3)),
        Case("faces: age/gender", "faces/age_gender.onnx", "image", (1, 112, 112, 3)),
        Case("faces: embedding", "faces/face_recognition.onnx", "image", (1, 150, 150, 3)),
        Case("faces: parsing", "faces/face_parsing.onnx", "image", (1, 512, 512, 3)),
        Case("person mask", "person/selfie_segmentation.onnx", "image", (1, 3, 256, 256)),
        Case("pose landmarks", "pose/pose_landmark_full.onnx", "image", (1, 3, 256, 256)),
    )


def options_for(provider: str, cache: Path, shape: tuple[int, ...] | None = None, input_name: str = ""):
    """One provider alone (ONNX Runtime adds CPU as the floor); TensorRT with a profile fixed at `shape`."""
    from services.common.runtime import RuntimeOptions

    profile: tuple[str, str, str] | tuple[()] = ()
    if provider == "tensorrt" and shape is not None:
        spelled = f"{input_name}:{'x'.join(map(str, shape))}"
        profile = (spelled, spelled, spelled)
    return RuntimeOptions(providers=(provider,), trt_cache_dir=cache, trt_profile=profile)


def time_model(case: Case, provider: str, cache: Path, repeats: int) -> str:
    """'12.3 ms' (first run, TensorRT's build, in brackets), or why it did not run there."""
    from services.common.runtime import OnnxModel

    feeds = {case.input: np.random.default_rng(0).random(case.shape, dtype=np.float32)}
    start = time.perf_counter()
    model = OnnxModel(MODELS_DIR / case.path, options_for(provider, cache / provider, case.shape, case.input))
    wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
    if model.provider != wanted[provider]:
        return f"n/a ({model.provider} instead)"
    model.run(feeds)
    first = time.perf_counter() - start
    seconds = median_seconds(lambda: model.run(feeds), repeats)
    return f"{seconds * 1000:.1f} ms" + (f" (first {first:.0f} s)" if provider == "tensorrt" else "")


def end_to_end(provider: str, cache: Path, side: int, repeats: int) -> str:
    """One scratched portrait through the learned engines: detect, generate one candidate, upscale x2."""
    from revive.v1 import common_pb2

    from services.common.config import ServiceConfig
    from services.common.runtime import OnnxModel, RuntimeOptions
    from services.detector.engines.unet import UNetDetector
    from services.generator.engine import RestorationInput
    from services.generator.engines.learned import LearnedGenerator
    from services.upscaler.engines.fidelity import FidelityUpscaler
    from tests.photos import portrait, scratched

    options = RuntimeOptions(providers=(provider,), trt_cache_dir=cache / provider)
    detector = UNetDetector()
    detector.model = OnnxModel(MODELS_DIR / "detector/damage_unet.onnx", options)
    if detector.model.provider == "CPUExecutionProvider" and provider != "cpu":
        return "n/a (CPU instead)"
    generator = LearnedGenerator(models_dir=MODELS_DIR, options=options)
    # Built on the provider itself: its tile batchers hold the models they run.
    upscaler = FidelityUpscaler(ServiceConfig(models_dir=MODELS_DIR, engines=("fidelity",), providers=(provider,),
                                              trt_cache_dir=cache / provider))
    photo, _ = scratched(portrait(side, side, seed=5), count=5)

    def restore() -> None:
        detection = detector.detect(photo)
        report = common_pb2.DamageReport(is_grayscale=detection.is_grayscale)
        candidate = generator.generate(RestorationInput(photo, detection.masks, report, common_pb2.RestoreOptions()), 1)
        upscaler.upscale(candidate, 2)

    restore()
    return f"{median_seconds(restore, repeats):.2f} s"


def torch_rows(repeats: int, quick: bool) -> list[str]:
    """The learned networks in PyTorch: CPU float32 vs CUDA float32 and bfloat16 (channels-last)."""
    import torch

    from training.detector.model import DamageUNet, load_compatible
    from training.upscaler.model import FidelitySR

    detector = DamageUNet()
    load_compatible(detector, torch.load(MODELS_DIR / "detector/damage_unet.pt", weights_only=True))
    networks = {
        "detector unet": (detector, (1, 3, 1152, 1152)),
        "upscaler fidelity x4": (FidelitySR.from_state(4, torch.load(MODELS_DIR / "upscaler/fidelity_x4.pt",
                                                                     weights_only=True)), (1, 3, 256, 256)),
    }
    try:  # its planes module needs the generated gRPC code, whose protobuf a GPU image may lack
        from services.generator.planes import CHANNELS
        from training.generator.model import RestorationNet
    except Exception as error:  # noqa: BLE001 (reported in the table, the other networks still run)
        print(f"generator skipped: {error}", flush=True)
    else:
        generator = RestorationNet()
        generator.load_state_dict(torch.load(MODELS_DIR / "generator/restoration.pt", weights_only=True))
        networks["generator"] = (generator, (1, CHANNELS, 288, 384))
    cuda = torch.cuda.is_available()
    rows = ["", f"PyTorch {torch.__version__}, {torch.cuda.get_device_name() if cuda else 'no CUDA'}; "
            f"median of {repeats}", "", "| network | cpu float32 | cuda float32 | cuda bfloat16 |", "|---|---|---|---|"]
    for name, (network, shape) in networks.items():
        network.eval()
        if quick:
            shape = shape[:2] + (64, 64)
        cells = []
        for device, dtype in (("cpu", torch.float32), ("cuda", torch.float32), ("cuda", torch.bfloat16)):
            if device == "cuda" and not cuda:
                cells.append("n/a (no CUDA)")
                continue
            model = network.to(device).to(memory_format=torch.channels_last)
            inputs = torch.rand(shape, device=device).contiguous(memory_format=torch.channels_last)

            def run() -> None:
                with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                    model(inputs)
                if device == "cuda":
                    torch.cuda.synchronize()

            run()
            cells.append(f"{median_seconds(run, repeats) * 1000:.1f} ms")
        rows.append(f"| {name}, {'x'.join(map(str, shape))} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return rows


def gpu_name() -> str:
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "no GPU"
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else "no GPU"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("var/gpu-check.md"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--trt-cache-dir", type=Path, default=Path("/tmp/revive-gpu-check"))
    parser.add_argument("--quick", action="store_true", help="a 256-px end-to-end photo and 2 repeats (the CPU test)")
    parser.add_argument("--torch", action="store_true", help="the PyTorch networks on CPU and CUDA instead")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    if not args.torch:
        import onnxruntime as ort
    if args.torch:
        table = "\n".join(torch_rows(repeats, args.quick)) + "\n"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        return table
    side = 256 if args.quick else 1024
    available = ort.get_available_providers()
    lines = [
        f"GPU check on {gpu_name()}, {platform.processor() or platform.machine()}; onnxruntime {ort.__version__} "
        f"(providers: {', '.join(available)}); median of {repeats}",
        "",
        "| model | " + " | ".join(PROVIDERS) + " |",
        "|---|" + "---|" * len(PROVIDERS),
    ]
    print("\n".join(lines), flush=True)
    for case in cases():
        row = f"| {case.name} | " + " | ".join(time_model(case, p, args.trt_cache_dir, repeats) for p in PROVIDERS) + " |"
        lines.append(row)
        print(row, flush=True)
    row = (f"| end to end: {side}² photo, detect + 1 candidate + x2 | "
           + " | ".join(end_to_end(p, args.trt_cache_dir, side, repeats) for p in PROVIDERS) + " |")
    lines.append(row)
    print(row, flush=True)
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    return table


if __name__ == "__main__":
    main()
