"""The gateway: HTTP and gRPC front door that orchestrates detect -> generate -> upscale."""
