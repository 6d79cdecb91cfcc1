"""The synthetic retrieval task (notes/contracts.md A); the only implementation of it.

A sample is filler sentences with 1-3 planted needles "The pass code of {name} is {value}."
(distinct names, distinct 4-digit values), then the question
    "\\nQuestion: what is the pass code of {name}?\\nAnswer: The pass code of {name} is"
whose expected continuation is " {value}.".

Use from the trainer (the filler is split and tokenised once; a sample then costs a few short
encodes and list concatenations):

    filler = Filler(open("train/build/data/train.txt").read(), tokenizer)   # tokenizers.Tokenizer
    ids, answer_start = make_sample(random.Random(seed), filler, length_tokens=512)

ids = prompt + answer: the prompt (ids[:answer_start]) has at most length_tokens tokens and in
practice 0-2 fewer (the eval set checks +-8); the answer (ids[answer_start:]) is " {value}."
(2-5 tokens). ids equal tokenizer.encode(prompt text + answer text).ids exactly. Any
length_tokens >= 64 works (shorter prompts get fewer needles; >= 128 always fits three).

Depth: with C the prompt's tokens before the question and N the asked needle's tokens, the asked
needle starts at token round(depth * (C - N)): depth 0 opens the prompt, depth 1 ends the context
just before the question. The other needles sit at random sentence boundaries.
"""
import bisect
import re

NEEDLE = "The pass code of {name} is {value}."
QUESTION = "\nQuestion: what is the pass code of {name}?\nAnswer: The pass code of {name} is"
ANSWER = " {value}."

FIRST_NAMES = (
    "Alice Bruno Clara Daniel Elena Felix Grace Hector Irene Jonas Karen Louis Maria Nathan Olga "
    "Pablo Quentin Rosa Simon Tessa Ulrich Vera Walter Xenia Yusuf Zoe Amir Beatrice Carlos Dora "
    "Emil Fiona"
).split()
LAST_NAMES = (
    "Abbott Becker Castillo Dunn Eriksen Fischer Garcia Hughes Ibarra Jensen Kowalski Lambert "
    "Moreno Novak Okafor Petrov Quinn Russo Schmidt Tanaka Underwood Vargas Weber Young Zimmer "
    "Almeida Brennan Costa Doyle Engel Ferreira Gallagher"
).split()

MAX_SENTENCE_TOKENS = 48

# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) before
# whitespace and a capital or an opening quote.
_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?])\s+(?=[\"\u201c(]?[A-Z])|(?<=[.!?][\"\u201d\u2019)])\s+(?=[\"\u201c(]?[A-Z])"
)


def split_sentences(text):
    """Sentences of plain text: lines split at sentence breaks, trimmed, empty ones dropped."""
    for line in text.split("\n"):
        for sentence in _SENTENCE_BREAK.split(line):
            sentence = sentence.strip()
            if sentence:
                yield sentence


class Filler:
    """Filler sentences of a text, each tokenised once with its leading space (" " + sentence)."""

    def __init__(self, text, tokenizer, max_sentence_tokens=MAX_SENTENCE_TOKENS):
        self.tokenizer = tokenizer
        # A sentence about pass codes or holding special-token text would confuse the task.
        candidates = [s for s in split_sentences(text) if "pass code" not in s.lower() and "<|" not in s]
        encodings = tokenizer.encode_batch([" " + s for s in candidates], add_special_tokens=False)
        self.texts, self.ids = [], []
        for sentence, enc in zip(candidates, encodings):
            if 1 <= len(enc.ids) <= max_sentence_tokens:
                self.texts.append(" " + sentence)
                self.ids.append(enc.ids)
        if not self.texts:
            raise ValueError("retrieval filler: the text has no usable sentences")
        self.max_len = max(len(ids) for ids in self.ids)
        by_length = {}
        for index, ids in enumerate(self.ids):
            by_length.setdefault(len(ids), []).append(index)
        self.lengths = sorted(by_length)
        self.by_length = by_length

    def encode(self, text):
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def fill(self, rng, budget):
        """Indices of sentences totalling at most budget tokens (short by 0-2 in practice): a run
        of consecutive sentences from a random start, topped up by the longest that still fits."""
        chosen, remaining = [], budget
        index = rng.randrange(len(self.ids))
        while remaining > self.max_len:
            chosen.append(index)
            remaining -= len(self.ids[index])
            index = (index + 1) % len(self.ids)
        while remaining > 0:
            fits = bisect.bisect_right(self.lengths, remaining)
            if fits == 0:
                break
            length = self.lengths[fits - 1]
            chosen.append(rng.choice(self.by_length[length]))
            remaining -= length
        return chosen


def _random_names(rng, count):
    picks = rng.sample(range(len(FIRST_NAMES) * len(LAST_NAMES)), count)
    return [f"{FIRST_NAMES[p // len(LAST_NAMES)]} {LAST_NAMES[p % len(LAST_NAMES)]}" for p in picks]


def _segment(rng, filler, budget, needles):
    """(text, ids) chunks: filler sentences for budget minus the needles, needles at random
    sentence boundaries."""
    room = budget - sum(len(ids) for _, ids in needles)
    chunks = [(filler.texts[i], filler.ids[i]) for i in filler.fill(rng, room)]
    for needle in needles:
        chunks.insert(rng.randint(0, len(chunks)), needle)
    return chunks


def _layout(rng, filler, span, depth, needles, asked):
    """Chunks for span tokens around the asked needle, which starts at token round(depth * span);
    the other needles go before it with probability depth, where they fit."""
    target = round(depth * span)
    rooms = {"before": target, "after": span - target}
    placed = {"before": [], "after": []}
    for k, needle in enumerate(needles):
        if k == asked:
            continue
        side = "before" if rng.random() < depth else "after"
        if len(needle[1]) > rooms[side]:
            side = "after" if side == "before" else "before"
        if len(needle[1]) > rooms[side]:
            return None
        rooms[side] -= len(needle[1])
        placed[side].append(needle)
    before = _segment(rng, filler, target, placed["before"])
    after = _segment(rng, filler, span - target, placed["after"])
    chunks = before + [needles[asked]] + after
    # The prompt opens without the space every chunk carries.
    first_text = chunks[0][0][1:]
    chunks[0] = (first_text, filler.encode(first_text))
    return chunks, len(before)


def build_sample(rng, filler, length_tokens, depth=None, n_needles=None):
    """One sample as a dict: prompt (text), prompt_ids, answer (" {value}", what greedy decoding
    must produce first), answer_ids (" {value}."), needle_pos (token index of the asked needle),
    depth, n_needles, name, value. depth None: uniform in [0, 1]. n_needles None: 1..3, fewer
    where length_tokens is too short for them (>= 64 always fits one needle, >= 128 three); a
    given n_needles that does not fit raises ValueError."""
    depth = rng.random() if depth is None else depth
    counts = range(rng.randint(1, 3), 0, -1) if n_needles is None else [n_needles]
    if not 0 <= depth <= 1 or any(n not in (1, 2, 3) for n in counts):
        raise ValueError(f"retrieval sample: depth {depth} must be in [0, 1], n_needles {n_needles} in 1..3")
    for n in counts:
        sample = _try_sample(rng, filler, length_tokens, depth, n)
        if sample is not None:
            return sample
    raise ValueError(f"retrieval sample: length_tokens {length_tokens} is too short for {counts[-1]} needle(s)")


def _try_sample(rng, filler, length_tokens, depth, n_needles):
    """build_sample's dict, or None where length_tokens cannot hold the needles and question."""
    names = _random_names(rng, n_needles)
    values = rng.sample(range(1000, 10000), n_needles)
    asked = rng.randrange(n_needles)
    needles = [
        (text, filler.encode(text)) for text in (" " + NEEDLE.format(name=n, value=v) for n, v in zip(names, values))
    ]
    question = QUESTION.format(name=names[asked])
    question_ids = filler.encode(question)
    span = length_tokens - len(question_ids) - len(needles[asked][1])
    if span < 0:
        return None
    # Unspacing the first sentence can cost a token or two; then lay out again (rarely twice).
    for _ in range(20):
        layout = _layout(rng, filler, span, depth, needles, asked)
        if layout is None:
            return None
        chunks, n_before = layout
        prompt_ids = [i for _, ids in chunks for i in ids] + question_ids
        if len(prompt_ids) <= length_tokens:
            break
    else:
        return None
    return {
        "prompt": "".join(text for text, _ in chunks) + question,
        "prompt_ids": prompt_ids,
        "answer": f" {values[asked]}",
        "answer_ids": filler.encode(ANSWER.format(value=values[asked])),
        "needle_pos": sum(len(ids) for _, ids in chunks[:n_before]),
        "depth": depth,
        "n_needles": n_needles,
        "name": names[asked],
        "value": values[asked],
    }


def make_sample(rng, filler, length_tokens, depth=None, n_needles=None):
    """(ids, answer_start) for training: prompt ids + answer ids, and where the answer starts."""
    sample = build_sample(rng, filler, length_tokens, depth, n_needles)
    return sample["prompt_ids"] + sample["answer_ids"], len(sample["prompt_ids"])
