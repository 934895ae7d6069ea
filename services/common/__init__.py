"""What every Revive service needs exactly once: configuration, logging, image
transport, the model runtime, metrics and the gRPC server bootstrap."""
