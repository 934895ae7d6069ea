"""Each service's RPCs over real gRPC on loopback: results, validation, limits."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from revive.v1 import (
    common_pb2,
    detector_pb2,
    detector_pb2_grpc,
    generator_pb2,
    generator_pb2_grpc,
    upscaler_pb2,
    upscaler_pb2_grpc,
)

from services.common.imaging import PNG, from_proto, to_proto
from tests.cluster import channel
from tests.photos import portrait, scratched


@pytest.fixture(scope="module")
def damaged() -> tuple[np.ndarray, np.ndarray]:
    return scratched(portrait(), count=5)


def detect(detector, rgb: np.ndarray, **fields) -> common_pb2.DamageReport:
    stub = detector_pb2_grpc.DamageDetectorStub(channel(detector.port))
    return stub.Detect(detector_pb2.DetectRequest(image=to_proto(rgb), **fields)).report


def test_detector_finds_scratches_and_reports_every_type(detector, damaged):
    photo, truth = damaged
    report = detect(detector, photo)
    masks = {m.type: from_proto(m.mask, channels=(1,)) for m in report.masks}
    assert set(masks) == {common_pb2.SCRATCH, common_pb2.TEAR, common_pb2.STAIN, common_pb2.FADING}
    scratch = masks[common_pb2.SCRATCH] >= 128
    recall = (scratch & (truth > 0)).sum() / (truth > 0).sum()
    assert recall > 0.6, f"only {recall:.0%} of the scratch pixels found"
    assert report.engine == "classical"
    assert not report.is_grayscale


def test_detector_tells_black_and_white_and_sepia_from_colour(detector):
    colour = portrait()
    grey = np.repeat(colour.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    sepia = np.clip(grey * np.array([1.07, 0.95, 0.75]), 0, 255).astype(np.uint8)
    assert not detect(detector, colour).is_grayscale
    assert detect(detector, grey).is_grayscale
    assert detect(detector, sepia).is_grayscale


def test_detector_accepts_png_transport(detector, damaged):
    photo, _ = damaged
    stub = detector_pb2_grpc.DamageDetectorStub(channel(detector.port))
    via_png = stub.Detect(detector_pb2.DetectRequest(image=to_proto(photo, PNG))).report
    via_raw = detect(detector, photo)
    assert [m.coverage for m in via_png.masks] == [m.coverage for m in via_raw.masks]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (common_pb2.Image(width=10, height=10, channels=3, encoding=common_pb2.Image.RAW, data=b"\0" * 7), "expected 300"),
        (common_pb2.Image(width=0, height=10, channels=3, encoding=common_pb2.Image.RAW), "positive"),
        (common_pb2.Image(width=5000, height=10, channels=3, encoding=common_pb2.Image.RAW), "4096"),
        (common_pb2.Image(width=4, height=4, channels=2, encoding=common_pb2.Image.RAW, data=b"\0" * 32), "channels"),
        (common_pb2.Image(width=4, height=4, channels=3, encoding=common_pb2.Image.PNG, data=b"junk"), "PNG"),
    ],
)
def test_detector_rejects_malformed_images(detector, image, message):
    stub = detector_pb2_grpc.DamageDetectorStub(channel(detector.port))
    with pytest.raises(grpc.RpcError) as error:
        stub.Detect(detector_pb2.DetectRequest(image=image))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_unknown_engine_is_invalid_argument(detector, damaged):
    stub = detector_pb2_grpc.DamageDetectorStub(channel(detector.port))
    with pytest.raises(grpc.RpcError) as error:
        stub.Detect(detector_pb2.DetectRequest(image=to_proto(damaged[0]), engine="nope"))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nope" in error.value.details()


def generate(generator, detector, photo: np.ndarray, seeds: list[int], **options) -> list[generator_pb2.Candidate]:
    report = detect(detector, photo)
    stub = generator_pb2_grpc.GeneratorStub(channel(generator.port))
    request = generator_pb2.GenerateRequest(
        image=to_proto(photo), damage=report, seeds=seeds, options=common_pb2.RestoreOptions(**options)
    )
    return list(stub.Generate(request))


def test_generator_streams_one_distinct_candidate_per_seed(generator, detector, damaged):
    photo, truth = damaged
    candidates = generate(generator, detector, photo, [7, 8, 9])
    assert [c.seed for c in candidates] == [7, 8, 9]
    images = [from_proto(c.image) for c in candidates]
    assert all(image.shape == photo.shape for image in images)
    assert len({image.tobytes() for image in images}) == 3, "candidates must differ"
    # The scratches are filled: their pixels move towards the surrounding (darker) photo.
    on_scratch = truth > 0
    assert all(image[on_scratch].mean() < photo[on_scratch].mean() - 20 for image in images)


def test_generator_is_deterministic_per_seed(generator, detector, damaged):
    first = generate(generator, detector, damaged[0], [42])[0]
    again = generate(generator, detector, damaged[0], [42])[0]
    assert first.image.data == again.image.data


@pytest.mark.parametrize(
    ("options", "seeds", "message"),
    [
        ({"candidates": 0}, [1], "candidates"),
        ({"upscale": 3}, [1], "upscale"),
        ({"age": 300}, [1], "age"),
        ({}, [], "seeds"),
        ({}, list(range(40)), "seeds"),
    ],
)
def test_generator_rejects_bad_requests(generator, detector, damaged, options, seeds, message):
    with pytest.raises(grpc.RpcError) as error:
        generate(generator, detector, damaged[0], seeds, **options)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_generator_rejects_a_mask_of_the_wrong_size(generator, damaged):
    bad_mask = common_pb2.DamageMask(type=common_pb2.SCRATCH, mask=to_proto(np.zeros((10, 10), np.uint8)))
    stub = generator_pb2_grpc.GeneratorStub(channel(generator.port))
    request = generator_pb2.GenerateRequest(
        image=to_proto(damaged[0]), damage=common_pb2.DamageReport(masks=[bad_mask]), seeds=[1]
    )
    with pytest.raises(grpc.RpcError) as error:
        list(stub.Generate(request))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "masks[0]" in error.value.details()


@pytest.mark.parametrize("box, message", [
    (common_pb2.Box(x=10, y=10, width=0, height=20), "width and height must be positive"),
    (common_pb2.Box(x=5000, y=10, width=40, height=40), "lies outside"),
])
def test_generator_rejects_a_reported_face_it_cannot_frame(generator, damaged, box, message):
    stub = generator_pb2_grpc.GeneratorStub(channel(generator.port))
    report = common_pb2.DamageReport(faces=[common_pb2.Face(box=box)], is_grayscale=True)
    request = generator_pb2.GenerateRequest(image=to_proto(damaged[0]), damage=report, seeds=[1])
    with pytest.raises(grpc.RpcError) as error:
        list(stub.Generate(request))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "faces[0].box" in error.value.details() and message in error.value.details()


def upscale(upscaler, rgb: np.ndarray, factor: int) -> upscaler_pb2.UpscaleResponse:
    stub = upscaler_pb2_grpc.UpscalerStub(channel(upscaler.port))
    return stub.Upscale(upscaler_pb2.UpscaleRequest(image=to_proto(rgb), factor=factor, engine="lanczos"))


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_upscaler_scales_by_the_factor(upscaler, factor):
    photo = portrait(200, 160)
    result = from_proto(upscale(upscaler, photo, factor).image)
    assert result.shape == (160 * factor, 200 * factor, 3)
    # Downscaled back, the result is the photo again (within resampling error).
    back = result[::factor, ::factor].astype(int)
    assert np.abs(back - photo).mean() < 6


@pytest.mark.parametrize(("size", "factor", "message"), [((100, 100), 3, "factor"), ((1100, 900), 4, "4096")])
def test_upscaler_refuses_bad_factors_and_oversize_results(upscaler, size, factor, message):
    with pytest.raises(grpc.RpcError) as error:
        upscale(upscaler, np.zeros((*size, 3), np.uint8), factor)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def upscale_set(upscaler, images: list[np.ndarray], factor: int) -> list[upscaler_pb2.UpscaleResponse]:
    stub = upscaler_pb2_grpc.UpscalerStub(channel(upscaler.port))
    request = upscaler_pb2.UpscaleSetRequest(images=[to_proto(image) for image in images], factor=factor)
    return list(stub.UpscaleSet(request, timeout=120))


def test_upscale_set_carries_toned_siblings_and_upscales_strangers_themselves(upscaler):
    """A sibling that differs in smooth tone and colour comes out as if upscaled itself; a different picture
    of the same size is upscaled itself."""
    photo = portrait(200, 160)
    rows, cols = np.mgrid[0:160, 0:200].astype(np.float32)
    tint = np.stack([1.0 + cols / 800, np.full_like(cols, 0.95), 1.0 - rows / 900], axis=2)
    sibling = np.clip(photo * tint + 6, 0, 255).astype(np.uint8)
    stranger = np.ascontiguousarray(photo[::-1, ::-1])
    answers = upscale_set(upscaler, [photo, sibling, stranger], 2)
    assert [answer.shared for answer in answers] == [False, True, False]
    alone = [from_proto(upscale(upscaler, image, 2).image) for image in (photo, sibling, stranger)]
    together = [from_proto(answer.image) for answer in answers]
    assert all(image.shape == (320, 400, 3) for image in together)
    assert np.array_equal(together[0], alone[0]) and np.array_equal(together[2], alone[2])
    error = np.mean((together[1].astype(np.float32) - alone[1]) ** 2)
    assert 10 * np.log10(255 ** 2 / error) > 40


@pytest.mark.parametrize(("sizes", "message"), [((), "1 to 16"), (((40, 30), (40, 31)), "one size"),
                                                (((40, 30),) * 17, "1 to 16")])
def test_upscale_set_refuses_empty_oversized_and_mixed_sets(upscaler, sizes, message):
    with pytest.raises(grpc.RpcError) as error:
        upscale_set(upscaler, [np.zeros((*size, 3), np.uint8) for size in sizes], 2)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_upscaler_and_generator_return_png_when_asked(upscaler, generator, detector):
    photo = portrait(120, 100)
    stub = upscaler_pb2_grpc.UpscalerStub(channel(upscaler.port))
    raw = stub.Upscale(upscaler_pb2.UpscaleRequest(image=to_proto(photo), factor=2))
    png = stub.Upscale(upscaler_pb2.UpscaleRequest(image=to_proto(photo), factor=2, output_encoding=PNG))
    assert png.image.encoding == PNG and np.array_equal(from_proto(png.image), from_proto(raw.image))
    report = detect(detector, photo)
    request = generator_pb2.GenerateRequest(image=to_proto(photo), damage=report, seeds=[3], output_encoding=PNG)
    (candidate,) = generator_pb2_grpc.GeneratorStub(channel(generator.port)).Generate(request)
    assert candidate.image.encoding == PNG and from_proto(candidate.image).shape == photo.shape


def test_detector_analyses_faces_on_request(detector):
    photo = np.asarray(Image.open(Path(__file__).parents[1] / "data" / "faces" / "sample1.jpg").convert("RGB"))
    without = detect(detector, photo)
    assert len(without.faces) == 0
    report = detect(detector, photo, analyze_faces=True)
    assert len(report.faces) >= 1
    face = report.faces[0]
    assert len(face.landmarks) == 68 and len(face.embedding) == 128
    inside = [face.box.x <= p.x <= face.box.x + face.box.width and face.box.y <= p.y <= face.box.y + face.box.height
              for p in face.landmarks]
    assert sum(inside) >= 60
    assert 5 < face.age < 90 and face.gender in (common_pb2.FEMALE, common_pb2.MALE)


def test_bytes_that_are_no_request_are_an_invalid_argument(detector):
    raw = channel(detector.port).unary_unary("/revive.v1.DamageDetector/Detect", lambda b: b, lambda b: b)
    with pytest.raises(grpc.RpcError) as error:
        raw(b"\xff\xff\xff not protobuf", timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid Detect message" in error.value.details()


def test_a_png_declaring_a_huge_size_is_refused_before_it_is_decoded(detector):
    import io
    import time

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (16384, 16384)).save(buffer, format="PNG")  # compresses to a few hundred KB
    image = common_pb2.Image(width=64, height=64, channels=3, encoding=common_pb2.Image.PNG, data=buffer.getvalue())
    stub = detector_pb2_grpc.DamageDetectorStub(channel(detector.port))
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        stub.Detect(detector_pb2.DetectRequest(image=image), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "PNG is 16384x16384, header says 64x64" in error.value.details()
    assert time.monotonic() - start < 1.0  # decoding it would take seconds and a gigabyte
