"""The offline demo: all three call shapes against the built-in offline models.

Run ``python -m harness.demo``. No network and no API key are needed: ``echo/…`` answers
with the last user message and ``mock/…`` plays scripted answers with simulated latency
and failures, exactly as a real provider's would surface, and embeds texts offline.
"""

from __future__ import annotations

from harness import AllModelsFailed, Harness, HarnessConfig, ModelResponse
from harness.embeddings import cosine

CONFIG = HarnessConfig.from_dict(
    {
        "models": {
            "quick": {
                "model": "mock/quick",
                "latency_ms": 40,
                "responses": ["Paris is the capital of France."],
            },
            "careful": {
                "model": "mock/careful",
                "latency_ms": 250,
                "responses": ["The capital of France is Paris, on the Seine."],
            },
            "flaky": {"model": "mock/flaky", "latency_ms": 10, "error": 503},
            "parrot": {"model": "echo/parrot"},
        }
    },
    source="harness.demo",
)


def main() -> None:
    """Run the three shapes and print what came back."""
    h = Harness(CONFIG, retries=1)
    question = [{"role": "user", "content": "What is the capital of France?"}]

    print("== batch: many conversations, one model (order kept, errors in place)")
    conversations = [
        [{"role": "user", "content": f"Say {word}"}] for word in ("one", "two", "three")
    ]
    for i, result in enumerate(h.batch_completion("parrot", conversations)):
        print(f"  [{i}] {_show(result)}")
    scripted = h.batch_completion(
        "quick",
        [question, question],
        mock_response=[{"error": 429, "retry_after": 0.05}, "after a retry"],
    )
    print(f"  a 429 then a success: {_show(scripted[0])} (attempts={_attempts(scripted[0])})")

    print("== race: one conversation, many models (first success wins, losers cancelled)")
    winner = h.batch_completion_models(["careful", "flaky", "quick"], question, num_retries=0)
    print(f"  winner: {winner.harness.model}: {winner.content}")
    assert winner.harness.race is not None
    for c in winner.harness.race.contestants:
        print(f"    {c.model:<8} {c.outcome:<9} {c.latency_ms:7.1f} ms {c.error or ''}")
    try:
        h.batch_completion_models(["flaky", "mock/down"], question, mock_response={"error": 500})
    except AllModelsFailed as exc:
        print(f"  when every model fails: {type(exc).__name__} with {len(exc.errors)} errors")

    print("== all: every model's answer, aligned with the model list")
    models = ["quick", "flaky", "careful", "parrot"]
    for model, result in zip(
        models, h.batch_completion_models_all_responses(models, question), strict=True
    ):
        print(f"  {model:<8} {_show(result)}")

    print("== embeddings: offline vectors (hashed n-grams), cosine similarity")
    texts = [
        "The capital of France is Paris.",
        "Paris is the capital of France.",
        "Bananas are yellow.",
    ]
    vectors = h.embedding("mock/embedder", texts).vectors
    for text, vector in zip(texts[1:], vectors[1:], strict=True):
        print(f"  {cosine(vectors[0], vector):.2f}  {texts[0]!r} vs {text!r}")


def _show(result: ModelResponse | Exception) -> str:
    if isinstance(result, ModelResponse):
        return f"{result.content!r} ({result.harness.latency_ms:.0f} ms)"
    return f"{type(result).__name__}: {result}"


def _attempts(result: ModelResponse | Exception) -> int:
    return (
        result.harness.attempts
        if isinstance(result, ModelResponse)
        else getattr(result, "attempts", 1)
    )


if __name__ == "__main__":
    main()
