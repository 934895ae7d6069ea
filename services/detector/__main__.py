"""`python -m services.detector`: run the detector gRPC service."""

from services.common.server import main
from services.detector.service import DEFINITION

if __name__ == "__main__":
    main(DEFINITION)
