"""`python -m services.upscaler`: run the upscaler gRPC service."""

from services.common.server import main
from services.upscaler.service import DEFINITION

if __name__ == "__main__":
    main(DEFINITION)
