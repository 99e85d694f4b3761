"""Classic reference metrics as ``similar`` scorers: ``rouge_l``, ``bleu``, ``levenshtein``.

This module owns the three scorers (``(output, expected) -> float in [0, 1]``) and the word
tokenisation they share with ``token_f1``. Edit distance and the longest common
subsequence come from rapidfuzz (C++), imported on first use; BLEU's n-gram counting is
plain Python. The definitions, with their sources, are in ``docs/metrics.md``.
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = ["BLEU_EPSILON", "BLEU_MAX_ORDER", "bleu", "levenshtein", "rouge_l", "words"]

_WORD_RE = re.compile(r"\w+")
BLEU_MAX_ORDER = 4
"""BLEU counts n-grams up to this order (BLEU-4)."""
BLEU_EPSILON = 0.1
"""Smoothing of an order with no matching n-gram: ``epsilon / count`` (Chen & Cherry 2014,
method 1, as NLTK's default)."""


def words(text: str) -> list[str]:
    """The lower-cased word tokens (runs of word characters) of ``text``."""
    return _WORD_RE.findall(text.lower())


def rouge_l(output: str, expected: str) -> float:
    """ROUGE-L F1: the longest common subsequence of the word tokens (Lin, 2004).

    ``R = LCS / len(expected)``, ``P = LCS / len(output)``, score ``2PR / (P + R)``
    (F1, as Google's ``rouge-score``). Two texts without words score 1.0 when both are
    empty of words, else 0.0.
    """
    from rapidfuzz.distance import LCSseq

    out, ref = words(output), words(expected)
    if not out or not ref:
        return 1.0 if not out and not ref else 0.0
    lcs = LCSseq.similarity(out, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(out), lcs / len(ref)
    return 2.0 * precision * recall / (precision + recall)


def bleu(output: str, expected: str) -> float:
    """Sentence BLEU-4 of the output's word tokens against one reference (Papineni et al., 2002).

    ``BP · exp(Σ w_n log p_n)``: ``p_n`` is the clipped n-gram precision for n = 1..4 with
    uniform weights, ``BP = exp(1 − r/c)`` when the output (``c`` tokens) is shorter than
    the reference (``r``), else 1. An order with no match gets ``p_n = 0.1 / count``
    (Chen & Cherry 2014, method 1), so one missing 4-gram does not zero the score; orders
    longer than the output are left out and the weights spread over the rest. An output
    without words scores 0.0 (1.0 when the reference has none either).
    """
    out, ref = words(output), words(expected)
    if not out or not ref:
        return 1.0 if not out and not ref else 0.0
    orders = min(BLEU_MAX_ORDER, len(out))
    log_sum = 0.0
    for n in range(1, orders + 1):
        hyp_grams = _ngrams(out, n)
        ref_grams = _ngrams(ref, n)
        total = sum(hyp_grams.values())
        matched = sum((hyp_grams & ref_grams).values())
        log_sum += math.log((matched or BLEU_EPSILON) / total)
    c, r = len(out), len(ref)
    penalty = 1.0 if c > r else math.exp(1.0 - r / c)
    return min(1.0, penalty * math.exp(log_sum / orders))


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def levenshtein(output: str, expected: str) -> float:
    """Normalised edit similarity: ``1 − distance / max(len)`` over characters.

    The Levenshtein distance (insertions, deletions and substitutions, each costing 1;
    Levenshtein, 1966) of the two texts as given (case and spaces count), divided by the
    longer length. Two empty texts score 1.0.
    """
    from rapidfuzz.distance import Levenshtein

    longest = max(len(output), len(expected))
    if longest == 0:
        return 1.0
    return 1.0 - Levenshtein.distance(output, expected) / longest
