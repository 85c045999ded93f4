"""Tokenizers for the text tower: a local one by path, or a WordPiece trained on the report corpus.

The trained tokenizer keeps accents (French: "fémur" and "femur" are different words to a radiologist's
report) and lower-cases. It is saved with every checkpoint, so a model is never fed another vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib.util import find_spec
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from bonevlp.text.clean import clean_report_spans

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


# A tokenizer folder must hold one of these; transformers would otherwise build an empty 5-token tokenizer from the
# model type in config.json, and the run would train on [UNK].
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "*.model")
# What transformers needs to read a SentencePiece *.model when no tokenizer.json sits beside it: package -> module.
SENTENCEPIECE_PACKAGES = {"sentencepiece": "sentencepiece", "protobuf": "google.protobuf"}


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local folder only (never a hub), refusing folders transformers would misread.

    Without tokenizer.json, a SentencePiece model (XLM-R, CamemBERT, mLUKE downloads) needs the sentencepiece and
    protobuf packages; transformers would otherwise fail with a misleading tiktoken error.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} does not exist; give a local save_pretrained folder")
    if not any(any(path.glob(pattern)) for pattern in VOCABULARY_FILES):
        raise FileNotFoundError(
            f"{path} holds no tokenizer vocabulary ({', '.join(VOCABULARY_FILES)}); "
            "set text.tokenizer_path to the folder of the model's tokenizer"
        )
    sentencepiece = sorted(path.glob("*.model"))
    if sentencepiece and not (path / "tokenizer.json").is_file():
        missing = [package for package, module in SENTENCEPIECE_PACKAGES.items() if not _importable(module)]
        if missing:
            raise ImportError(
                f"{sentencepiece[0]} is a SentencePiece model and {path} has no tokenizer.json: reading it needs "
                f"`pip install {' '.join(missing)}`, or save the tokenizer once with save_pretrained where they are "
                "installed (that writes tokenizer.json, which loads without them)"
            )
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the tokenizer in {path} has no padding token; batches of reports cannot be padded")
    return tokenizer


def _importable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def require_offsets(tokenizer: PreTrainedTokenizerBase, purpose: str, remedy: str = "") -> None:
    """Fail unless `tokenizer` is a fast one, which gives character offsets: `purpose` says what needs them."""
    if not tokenizer.is_fast:
        raise ValueError(f"{purpose} needs a fast tokenizer (character offsets); {type(tokenizer).__name__} is not: "
                         f"load one with a tokenizer.json{remedy}")  # fmt: skip


def tokenize_marked(tokenizer: PreTrainedTokenizerBase, reports: Sequence[str],
                    spans: Sequence[Sequence[tuple[int, int]]], max_length: int,
                    ) -> tuple[list[list[int]], list[list[bool]]]:  # fmt: skip
    """Each report cleaned as training reports are and tokenized, with one flag per token: does it hold a character
    of one of the report's character `spans` (finding mentions). Needs a fast tokenizer: the flags come from its
    character offsets."""
    require_offsets(tokenizer, "marking mentions in reports")
    if len(spans) != len(reports):
        raise ValueError(f"{len(reports)} reports but {len(spans)} span lists: give one list per report")
    cleaned = [clean_report_spans(report, found, sep_token=tokenizer.sep_token) for report, found in zip(reports, spans)]
    encoded = tokenizer([text for text, _ in cleaned], truncation=True, max_length=max_length,
                        return_offsets_mapping=True)  # fmt: skip
    flags = [[any(a < end and start < b for a, b in found) for start, end in offsets]
             for offsets, (_, found) in zip(encoded["offset_mapping"], cleaned)]  # fmt: skip
    return encoded["input_ids"], flags
