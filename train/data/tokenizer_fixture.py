#!/usr/bin/env python3
"""Python's view of train/tokenizer for test/train/tokenizer.test.ts: writes
test/train/tokenizer.expected.json with HF `tokenizers` ids and decodes of test texts and
transformers' apply_chat_template renderings. Rerun after retraining the tokenizer:

    /tmp/hfvenv/bin/python train/data/tokenizer_fixture.py
"""
import hashlib
import json
import os

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER_DIR = os.path.join(ROOT, "train", "tokenizer")
SHARED_TEXTS = os.path.join(ROOT, "test", "fixtures", "tokenizer", "texts.json")
OUT = os.path.join(ROOT, "test", "train", "tokenizer.expected.json")

# English close to the training data, plus the retrieval task's own phrasing.
ENGLISH = [
    {"name": "brown-news", "text": 'The jury said it did find that many of Georgia\'s registration and election laws "are outmoded or inadequate and often ambiguous".'},
    {"name": "brown-dash", "text": "The radial velocity varies inversely as the particle size -- a 1000-m-diameter particle near the orbit of Mars would reach the sun in about 60 million years."},
    {"name": "dialogue", "text": "\"Where were you?\" she asked.\n\"Out,\" he said. \"It's none of your business, isn't it?\"\n\nShe didn't answer."},
    {"name": "retrieval", "text": "The pass code of Tessa Doyle is 4102. It rained.\nQuestion: what is the pass code of Tessa Doyle?\nAnswer: The pass code of Tessa Doyle is 4102."},
    {"name": "specials", "text": "<|endoftext|>Once upon a time<|user|>hi<|end|>\n<|assistant|>\nhello<|end|><|endoftext|>"},
]

CHATS = [
    {"name": "single-user", "messages": [{"role": "user", "content": "Hello!"}], "addGenerationPrompt": True},
    {
        "name": "multi-turn",
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "2+2 is 4."},
            {"role": "user", "content": "And 3+3? Café ☕"},
        ],
        "addGenerationPrompt": True,
    },
    {
        "name": "no-generation-prompt",
        "messages": [{"role": "user", "content": "  spaced \n"}, {"role": "assistant", "content": "ok"}],
        "addGenerationPrompt": False,
    },
]


def dump_one_row_per_line(doc):
    """JSON with each text / chat on one line (readable diffs, no id per line)."""
    lines = []
    for key, value in doc.items():
        if isinstance(value, list):
            rows = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in value)
            lines.append(f"{json.dumps(key)}: [\n{rows}\n ]")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(lines) + "\n}\n"


def main():
    path = os.path.join(TOKENIZER_DIR, "tokenizer.json")
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    tok = Tokenizer.from_file(path)
    with open(SHARED_TEXTS, encoding="utf-8") as f:
        texts = json.load(f)["texts"] + ENGLISH
    rows = []
    for t in texts:
        ids = tok.encode(t["text"], add_special_tokens=True).ids
        rows.append(
            {
                "name": t["name"],
                "text": t["text"],
                "ids": ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decodedSkipSpecial": tok.decode(ids, skip_special_tokens=True),
            }
        )
    hf = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    chats = []
    for chat in CHATS:
        rendered = hf.apply_chat_template(
            chat["messages"], tokenize=False, add_generation_prompt=chat["addGenerationPrompt"]
        )
        chats.append({**chat, "rendered": rendered, "ids": tok.encode(rendered).ids})
    doc = {
        "tokenizerSha256": sha,
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "texts": rows,
        "chats": chats,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(dump_one_row_per_line(doc))
    print(f"{len(rows)} texts, {len(chats)} chats -> {OUT}")


if __name__ == "__main__":
    main()
