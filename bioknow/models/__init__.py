"""Layer 2: Equinox models that work on whole batches: the Transformer (attention that returns
its pattern and accepts one to use instead), the Hawk block, the toy associative memory."""
