"""The Upscaler gRPC servicer and the upscaler's service definition."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
from revive.v1 import upscaler_pb2, upscaler_pb2_grpc

from services.common.engines import EngineSet
from services.common.errors import InvalidInput
from services.common.imaging import MAX_SIDE, RAW, from_proto, to_proto
from services.common.options import UPSCALE_FACTORS
from services.common.server import ServiceDefinition
from services.upscaler.engine import UpscalerEngine
from services.upscaler.engines.esrgan import EsrganUpscaler
from services.upscaler.engines.fidelity import FidelityUpscaler
from services.upscaler.engines.lanczos import LanczosUpscaler
from services.upscaler.engines.realesrgan import RealEsrganUpscaler
from services.upscaler.settings import UpscalerSettings
from services.upscaler.siblings import Upscaled, upscale_siblings


#: Images one UpscaleSet may carry: a photo's candidates.
MAX_SET = 16


class UpscalerServicer(upscaler_pb2_grpc.UpscalerServicer):
    def __init__(self, engines: EngineSet[UpscalerEngine]) -> None:
        self._engines = engines

    def Upscale(self, request: upscaler_pb2.UpscaleRequest, context: grpc.ServicerContext) -> upscaler_pb2.UpscaleResponse:
        engine = self._engines.get(request.engine)
        factor = checked_factor(engine, request.factor)
        rgb = from_proto(request.image, channels=(3,))
        check_size(rgb, factor)
        result = rgb if factor == 1 else engine.upscale(rgb, factor)
        return upscaler_pb2.UpscaleResponse(image=to_proto(result, request.output_encoding or RAW), engine=engine.name)

    def UpscaleSet(self, request: upscaler_pb2.UpscaleSetRequest,
                   context: grpc.ServicerContext) -> Iterator[upscaler_pb2.UpscaleResponse]:
        engine = self._engines.get(request.engine)
        factor = checked_factor(engine, request.factor)
        if not 1 <= len(request.images) <= MAX_SET:
            raise InvalidInput(f"a set holds 1 to {MAX_SET} images, got {len(request.images)}")
        images = [from_proto(image, channels=(3,)) for image in request.images]
        sizes = {image.shape[:2] for image in images}
        if len(sizes) > 1:
            raise InvalidInput(f"the images of a set must share one size, got {sorted(f'{w}x{h}' for h, w in sizes)}")
        check_size(images[0], factor)
        encoding = request.output_encoding or RAW
        if factor == 1:
            results = (Upscaled(image, shared=False) for image in images)
        else:
            results = upscale_siblings(images, factor, engine.upscale)
        for result in results:
            yield upscaler_pb2.UpscaleResponse(image=to_proto(result.rgb, encoding), engine=engine.name,
                                               shared=result.shared)


def checked_factor(engine: UpscalerEngine, requested: int) -> int:
    factor = requested or 1
    if factor not in UPSCALE_FACTORS:
        raise InvalidInput(f"factor must be one of {UPSCALE_FACTORS}, got {factor}")
    if factor not in engine.factors + (1,):
        raise InvalidInput(f"engine {engine.name!r} supports factors {engine.factors}, not {factor}")
    return factor


def check_size(rgb: np.ndarray, factor: int) -> None:
    height, width = rgb.shape[:2]
    if max(height, width) * factor > MAX_SIDE:
        raise InvalidInput(
            f"x{factor} of {width}x{height} would be {width * factor}x{height * factor}, "
            f"over the {MAX_SIDE}-pixel side limit"
        )


DEFINITION = ServiceDefinition(
    name="upscaler",
    grpc_service=upscaler_pb2.DESCRIPTOR.services_by_name["Upscaler"].full_name,
    default_port=50053,
    default_metrics_port=9103,
    # Default first, by the rule in services/upscaler/README.md: the best Y-PSNR on photos degraded like scans
    # among the engines that keep a 1 MP, 4-candidate x2 request within 20 s: on 2 CPU cores that is fidelity
    # (10 s; realesrgan 46 s); the gpu overlay puts realesrgan first.
    engines={"fidelity": FidelityUpscaler, "realesrgan": RealEsrganUpscaler, "lanczos": LanczosUpscaler,
             "esrgan": EsrganUpscaler},
    settings=UpscalerSettings,
    add_servicer=lambda server, engines: upscaler_pb2_grpc.add_UpscalerServicer_to_server(
        UpscalerServicer(engines), server
    ),
)
