"""Plain-text documents from the two corpora shipped as npm devDependencies.

read_brown(dir)      -> Brown corpus (Form C, POS-tagged): tags stripped, sentences detokenised,
                        one document per file (ca01 ... cr09), paragraphs on their own lines.
read_nlp_corpus(dir) -> nlp-corpus builds/doc-N.json (1000 shuffled sentences each), cut into
                        documents of SENTENCES_PER_DOC sentences, one sentence per line.
Each document is a (doc_id, text) pair; texts never contain a blank line (train.txt separates
documents by one).
"""
import html
import json
import os
import re

SENTENCES_PER_DOC = 50

# Brown tokens that attach to the word before them / to the word after them.
_ATTACH_LEFT = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'"}
_ATTACH_RIGHT = {"``", "(", "["}
_QUOTES = {"``": "\u0022", "''": "\u0022"}  # Brown's LaTeX-style double quotes -> "

_BROWN_FILE = re.compile(r"^c[a-r]\d\d$")


def _strip_tag(token):
    word, _, tag = token.rpartition("/")
    return (word, tag) if word else (token, "")


def detokenize(words):
    """Brown's space-separated tokens as running text: punctuation and quotes attached."""
    out = []
    glue_next = True  # no space before the first word
    for word in words:
        if word == "." and out and out[-1].endswith("."):
            continue  # "Jr." ending a sentence: Brown adds a separate full stop
        text = _QUOTES.get(word, word)
        if not glue_next and word not in _ATTACH_LEFT:
            out.append(" ")
        out.append(text)
        glue_next = word in _ATTACH_RIGHT
    return "".join(out)


def _brown_paragraphs(raw):
    """Blank-line separated blocks are paragraphs, each line one sentence; a line whose tokens
    are all headline-tagged (-hl) becomes a paragraph of its own."""
    for block in re.split(r"\n\s*\n", raw):
        sentences = []
        for line in block.strip().split("\n"):
            tagged = [_strip_tag(t) for t in line.split()]
            if not tagged:
                continue
            text = detokenize([w for w, _ in tagged])
            if all(tag.endswith("-hl") for _, tag in tagged):
                if sentences:
                    yield " ".join(sentences)
                    sentences = []
                yield text
            else:
                sentences.append(text)
        if sentences:
            yield " ".join(sentences)


def brown_files(brown_dir):
    return sorted(f for f in os.listdir(brown_dir) if _BROWN_FILE.match(f))


def read_brown(brown_dir):
    docs = []
    for name in brown_files(brown_dir):
        with open(os.path.join(brown_dir, name), encoding="utf-8") as f:
            text = "\n".join(_brown_paragraphs(f.read()))
        docs.append((f"brown/{name}", text))
    return docs


def nlp_corpus_files(nlp_dir):
    builds = os.path.join(nlp_dir, "builds")
    names = [f for f in os.listdir(builds) if re.match(r"^doc-\d+\.json$", f)]
    return [os.path.join("builds", f) for f in sorted(names, key=lambda f: int(f[4:-5]))]


def _clean_sentence(sentence):
    """HTML entities decoded (a few scraped sentences keep &amp; &gt; ...), trimmed, newlines
    normalised, no blank lines inside (they would split a document)."""
    text = html.unescape(sentence).replace("\r\n", "\n").replace("\r", "\n").strip()
    return re.sub(r"\n\s*\n", "\n", text)


def read_nlp_corpus(nlp_dir):
    docs = []
    for rel in nlp_corpus_files(nlp_dir):
        with open(os.path.join(nlp_dir, rel), encoding="utf-8") as f:
            sentences = [s for s in map(_clean_sentence, json.load(f)) if s]
        stem = os.path.basename(rel)[: -len(".json")]
        for start in range(0, len(sentences), SENTENCES_PER_DOC):
            chunk = sentences[start : start + SENTENCES_PER_DOC]
            docs.append((f"nlp-corpus/{stem}/{start // SENTENCES_PER_DOC:02d}", "\n".join(chunk)))
    return docs
