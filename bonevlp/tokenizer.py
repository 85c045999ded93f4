"""Tokenizers for the text tower: a local one by path, or a WordPiece trained on the report corpus.

The trained tokenizer keeps accents (French: "fémur" and "femur" are different words to a radiologist's
report) and lower-cases. It is saved with every checkpoint, so a model is never fed another vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONTINUATION = "##"


def train_wordpiece(corpus: Iterable[str], vocab_size: int = 4000, max_length: int = 128) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer on report texts; the same corpus always gives the same vocabulary.

    The `tokenizers` trainer numbers the "##x" continuation tokens in hash-map order, which changes its merge
    tie-breaks from run to run (huggingface/tokenizers#1794). Declaring every "##x" up front, in sorted order,
    fixes their ids; the final tokenizer is rebuilt from the learnt vocabulary with only the real special tokens.
    """
    texts = [t for t in corpus if t and t.strip()]
    if not texts:
        raise ValueError("cannot train a tokenizer on an empty corpus: no non-empty report text was given")
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False, clean_text=True)
    alphabet = sorted({c for text in texts for c in normalizer.normalize_str(text) if not c.isspace()})
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + [CONTINUATION + c for c in alphabet],
        continuing_subword_prefix=CONTINUATION,
        show_progress=False,
    )
    learner = _wordpiece(models.WordPiece(unk_token="[UNK]"), normalizer)
    learner.train_from_iterator(texts, trainer)

    tok = _wordpiece(models.WordPiece(vocab=learner.get_vocab(), unk_token="[UNK]"), normalizer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.decoder = decoders.WordPiece(prefix=CONTINUATION)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=max_length,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _wordpiece(model: models.WordPiece, normalizer: normalizers.Normalizer) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local directory only (never a hub)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} does not exist; give a local save_pretrained folder")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
