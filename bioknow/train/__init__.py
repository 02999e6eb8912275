"""Layer 3: losses and metrics, the jitted steps, checkpoints, the training loop."""
