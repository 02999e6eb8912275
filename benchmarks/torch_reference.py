"""The plain PyTorch bar of `python -m bioknow.bench train`: the same layers, width and
vocabulary as bioknow's paper-shape and small-shape models, written the plain way (pre-norm
blocks, fused causal attention, AdamW, float32), trained on random tokens with every position
real. torch is not a dependency of bioknow; run this in an environment that has it:

  python benchmarks/torch_reference.py            # both shapes, one JSON line each

and compare its tokens_per_second with bench train's real tokens/s on the same machine.
"""

import json
import time

import torch
from torch import nn
from torch.nn import functional as F

# name: (layers, heads, d_model, d_mlp, vocabulary, batch, sequence length)
SHAPES = {
  "paper": (8, 8, 512, 2048, 32_000, 8, 128),
  "small": (2, 4, 64, 256, 559, 32, 129),
}


class Block(nn.Module):
  def __init__(self, d: int, heads: int, d_mlp: int):
    super().__init__()
    self.heads = heads
    self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
    self.qkv, self.out = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
    self.up, self.down = nn.Linear(d, d_mlp, bias=False), nn.Linear(d_mlp, d, bias=False)

  def forward(self, x_BxTxD):
    b, t, d = x_BxTxD.shape
    q, k, v = self.qkv(self.ln1(x_BxTxD)).split(d, dim=-1)
    q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    x_BxTxD = x_BxTxD + self.out(y.transpose(1, 2).reshape(b, t, d))
    return x_BxTxD + self.down(F.gelu(self.up(self.ln2(x_BxTxD))))


class LM(nn.Module):
  def __init__(self, layers: int, heads: int, d: int, d_mlp: int, vocab: int, t: int):
    super().__init__()
    self.embed, self.pos = nn.Embedding(vocab, d), nn.Embedding(t, d)
    self.blocks = nn.ModuleList(Block(d, heads, d_mlp) for _ in range(layers))
    self.ln = nn.LayerNorm(d)

  def forward(self, tokens_BxT):
    x = self.embed(tokens_BxT) + self.pos(torch.arange(tokens_BxT.shape[1]))
    for block in self.blocks:
      x = block(x)
    return self.ln(x) @ self.embed.weight.T  # tied output layer


def measure(name: str, seconds: float = 10.0, batch: int | None = None) -> dict:
  layers, heads, d, d_mlp, vocab, default_batch, t = SHAPES[name]
  batch = batch or default_batch
  torch.manual_seed(0)
  model = LM(layers, heads, d, d_mlp, vocab, t)
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
  tokens_BxT = torch.randint(0, vocab, (batch, t + 1))

  def step():
    logits = model(tokens_BxT[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, vocab), tokens_BxT[:, 1:].reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

  for _ in range(3):
    step()
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds or n < 3:
    step()
    n += 1
  elapsed = time.perf_counter() - start
  return {
    "bench": "torch_reference",
    "shape": name,
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "batch_size": batch,
    "seq_len": t,
    "steps_per_second": round(n / elapsed, 3),
    "tokens_per_second": round(n * batch * t / elapsed),
  }


if __name__ == "__main__":
  for shape in SHAPES:
    print(json.dumps(measure(shape)), flush=True)
  # bioknow's small runs train on batches of 64.
  print(json.dumps(measure("small", batch=64)), flush=True)
