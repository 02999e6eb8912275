"""Reading and judging finished runs: plain numpy over metrics records, no jax, no matplotlib."""
