"""Trains the family's byte-level BPE tokenizer and writes tokenizer.json + tokenizer_config.json.

Contract (notes/contracts.md A): vocab 8192, special tokens <|endoftext|> <|user|> <|assistant|>
<|end|> at ids 0..3, ByteLevel pre-tokenizer and decoder, no normaliser (lossless), no
post-processor: plain prompts get no BOS (lib/api/prompt.ts encodes them with special tokens
on, so a BOS here would reach the model), and the chat template writes every special token
itself. bos = eos = pad = <|endoftext|>, the separator between training documents.
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB_SIZE = 8192
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS = [ENDOFTEXT, "<|user|>", "<|assistant|>", "<|end|>"]

# Turns as "<|user|>\n...<|end|>\n"; add_generation_prompt opens the assistant's turn. Only the
# roles the vocabulary has tokens for are accepted.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['user', 'assistant'] %}"
    "{{ raise_exception('Unsupported role ' + message['role'] + ': only user and assistant') }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": ENDOFTEXT,
    "eos_token": ENDOFTEXT,
    "pad_token": ENDOFTEXT,
    "additional_special_tokens": SPECIAL_TOKENS[1:],
    "add_bos_token": False,
    "add_eos_token": False,
    "clean_up_tokenization_spaces": False,
    "model_max_length": 1024,
    "chat_template": CHAT_TEMPLATE,
}


def train_tokenizer(texts):
    """A fresh BPE trained on the iterable of document texts (deterministic for the same input)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    check_tokenizer(tok)
    return tok


def check_tokenizer(tok):
    """Raises if tok breaks the contract (vocab size, special ids)."""
    if tok.get_vocab_size() != VOCAB_SIZE:
        raise ValueError(f"tokenizer: vocab size {tok.get_vocab_size()}, expected {VOCAB_SIZE}")
    for want, token in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(token) != want:
            raise ValueError(f"tokenizer: {token} has id {tok.token_to_id(token)}, expected {want}")


def save_tokenizer(tok, out_dir):
    """Writes tokenizer.json and tokenizer_config.json into out_dir; returns tokenizer.json's path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "tokenizer.json")
    tok.save(path)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(TOKENIZER_CONFIG, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return path


def load_tokenizer(path):
    tok = Tokenizer.from_file(path)
    check_tokenizer(tok)
    return tok
