"""The upscaler's models: FidelitySR training and export, and the ESRGAN conversion from npm packages with its reference check."""
