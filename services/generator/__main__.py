"""`python -m services.generator`: run the generator gRPC service."""

from services.common.server import main
from services.generator.service import DEFINITION

if __name__ == "__main__":
    main(DEFINITION)
