"""On a lent GPU machine: the bundled GGUF (carried in parts, joined at /tmp/m/model.gguf) -> an HF folder at
/tmp/hf like gensim's converted one (dequantised, fp32), with the tokenizer and config files of the folder
given as the first argument (copy them, with tokenizer.json, from ``~/.cache/gensim/models/smollm2-135m-instruct``
into the sweep's prep folder as ``tok/``). Prints two weight sums to compare with this machine's converted
model (2026-12-04: -15353.0445 and 59.2232 on both)."""

import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

kw = {}
try:
    from transformers import GgufConfig

    kw["quantization_config"] = GgufConfig(dequantize=True)
except ImportError:  # older transformers dequantise GGUF by default
    pass
model = AutoModelForCausalLM.from_pretrained("/tmp/m", gguf_file="model.gguf", dtype=torch.float32, **kw)
model.save_pretrained("/tmp/hf", safe_serialization=True)
for f in Path(sys.argv[1]).iterdir():
    shutil.copy(f, "/tmp/hf/" + f.name)
sd = model.state_dict()
print("sums", float(sd["model.embed_tokens.weight"].double().sum()),
      float(sd["model.layers.0.self_attn.q_proj.weight"].double().sum()), flush=True)
