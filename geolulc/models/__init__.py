"""Networks, the model file (safetensors + card), training and accuracy assessment.

The bundled models lie in `bundled/`.
"""
