"""Layer 2: single-example Equinox models (vmapped over the batch by the train step)."""
