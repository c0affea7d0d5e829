"""Networks, the model file (safetensors + card), training and accuracy assessment; the bundled
models lie in `bundled/`."""
