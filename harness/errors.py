"""One exception tree for every provider.

::

    HarnessError
    ├── ConfigError                    bad setup: unknown provider/alias, missing key, bad config
    ├── APIError                       anything that went wrong talking to the provider
    │   ├── APIStatusError             the provider answered with an error status
    │   │   ├── BadRequestError        400, 413; malformed messages (raised before sending)
    │   │   │   ├── ContextWindowExceededError
    │   │   │   ├── ContentFilterError
    │   │   │   └── UnprocessableEntityError   422
    │   │   ├── AuthenticationError    401 (and Gemini's invalid-key 400)
    │   │   ├── PermissionDeniedError  403
    │   │   ├── BillingError           402, and quota-exhausted 429s that will not clear by waiting
    │   │   ├── NotFoundError          404
    │   │   ├── ConflictError          409 (retried)
    │   │   ├── RateLimitError         429 (retried; carries ``retry_after``)
    │   │   └── InternalServerError    500 and other 5xx (retried)
    │   │       └── ServiceUnavailableError  503, 529 overloaded (retried)
    │   │           └── BadGatewayError      502 (retried)
    │   ├── TimeoutError               the call or the server timed out (408, 504; retried)
    │   ├── APIConnectionError         could not connect, or the connection broke (retried)
    │   └── InvalidResponseError       a body that does not parse as the provider's format
    │       └── ResponseTooLargeError  a body past max_response_bytes (read no further)
    ├── ReplayMissError                replay mode found no recorded answer
    ├── BudgetExceededError            the session's cost cap was reached; the request was not sent
    └── AllModelsFailed                every model of a race failed; carries each model's error

Every error carries ``provider``, ``model``, ``status`` and a short ``body`` excerpt. API keys
are scrubbed from messages and bodies before an error is built, so printing, logging or
recording an error never leaks one.

LiteLLM's and the OpenAI SDK's names work too: ``status_code`` and ``llm_provider`` read
``status`` and ``provider``; ``Timeout`` is ``TimeoutError``, ``ContentPolicyViolationError``
is ``ContentFilterError`` and ``APIResponseValidationError`` is ``InvalidResponseError``
(``LITELLM_NAMES`` lists every correspondence; ``error_class`` finds a class by either name).
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "LITELLM_NAMES",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "AllModelsFailed",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BillingError",
    "BudgetExceededError",
    "ConfigError",
    "ConflictError",
    "ContentFilterError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "HarnessError",
    "InternalServerError",
    "InvalidResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReplayMissError",
    "ResponseTooLargeError",
    "ServiceUnavailableError",
    "Timeout",
    "TimeoutError",
    "UnprocessableEntityError",
    "code_class",
    "default_status",
    "error_class",
    "error_from_status",
    "Secret",
    "get_logger",
    "knows_secrets",
    "redact_known",
    "register_secret",
    "scrub",
    "secret",
    "secret_headers",
]

BODY_EXCERPT_CHARS = 500

# Things that look like credentials: bearer tokens and the usual key prefixes.
_SECRET_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"
    r"|\b(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,})"
    r"|\b(AIza[0-9A-Za-z_\-]{20,})"
)

_known_secrets: set[str] = set()


class Secret(str):
    """A key that hides in ``repr``: a ``str`` everywhere else (headers are built from it).

    Every key the harness holds is one, so a ``Call`` or a header mapping shown by pytest's
    ``--showlocals``, a debugger or a log line says ``'***'`` instead of the key.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def secret(value: str) -> Secret:
    """``value`` as a registered ``Secret`` (scrubbed from any text the harness writes)."""
    register_secret(value)
    return value if isinstance(value, Secret) else Secret(value)


_CREDENTIAL_HEADER = re.compile(r"(?i)auth|key|token|secret|password|cookie|credential")


def secret_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with every credential-looking value (by its name) made a ``Secret``.

    The credential itself is registered for scrubbing: the value after an auth scheme
    (``Bearer``, ``Basic``, ``Token``), so scrubbed text reads ``Bearer ***``.
    """
    out: dict[str, str] = {}
    for name, value in headers.items():
        if value and _CREDENTIAL_HEADER.search(name):
            scheme, _, rest = value.partition(" ")
            register_secret(rest if rest and scheme.lower() in _AUTH_SCHEMES else value)
            value = Secret(value)
        out[name] = value
    return out


_AUTH_SCHEMES = ("bearer", "basic", "token", "key")


def register_secret(value: str | None) -> None:
    """Remember a key so that ``scrub`` removes it from any text (ignored under 8 chars)."""
    if value and len(value) >= 8:
        _known_secrets.add(str(value))


def knows_secrets() -> bool:
    """Whether any key is registered (``redact_known`` has nothing to do otherwise)."""
    return bool(_known_secrets)


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs keys from a record's message (harness loggers carry it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the formatted message; never drops a record."""
        if record.args or _known_secrets:
            message = scrub(record.getMessage())
            record.msg, record.args = message, None
        return True


def get_logger(name: str) -> logging.Logger:
    """A harness logger whose records are scrubbed of keys before any handler sees them."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, ScrubFilter) for f in logger.filters):
        logger.addFilter(ScrubFilter())
    return logger


def redact_known(text: str) -> str:
    """Replace every registered API key in ``text`` with ``***`` (exact matches only).

    For text that must otherwise stay as it is, such as model output being stored.
    """
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def scrub(text: str) -> str:
    """Remove known API keys and key-shaped tokens from ``text``."""
    text = redact_known(text)
    return _SECRET_PATTERNS.sub(lambda m: (m.group(1) or "") + "***", text)


def excerpt(body: bytes | str | None, limit: int = BODY_EXCERPT_CHARS) -> str | None:
    """A short, scrubbed, single-string excerpt of a response body."""
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = scrub(text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class HarnessError(Exception):
    """Base of every error the harness raises or puts in a result slot."""

    retryable: bool = False
    """Whether the runner's retry policy may try the call again."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        body: bytes | str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        llm_provider: str | None = None,
        response: Any = None,
    ) -> None:
        if provider is None:
            provider = llm_provider  # LiteLLM's keyword
        if status is None and isinstance(getattr(response, "status_code", None), int):
            status = response.status_code  # LiteLLM's and the SDK's ``response=``
        self.message = scrub(message)
        self.provider = provider
        self.model = model
        self.status = status
        self.body = excerpt(body)
        self.retry_after = retry_after
        self.request_id = request_id
        self.attempts = 1
        """How many attempts were made before this error was final."""
        super().__init__(self.message)

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self._model_name()) if p)
        parts = [f"[{where}]" if where else "", f"HTTP {self.status}:" if self.status else ""]
        return " ".join(p for p in parts if p) + (" " if any(parts) else "") + self.message

    def _model_name(self) -> str | None:
        if self.model and self.provider and self.model.startswith(self.provider + "/"):
            return self.model[len(self.provider) + 1 :]
        return self.model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @property
    def status_code(self) -> int | None:
        """``status`` under LiteLLM's and the OpenAI SDK's name."""
        return self.status

    @property
    def llm_provider(self) -> str | None:
        """``provider`` under LiteLLM's name."""
        return self.provider

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data for result records and reports."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "provider": self.provider,
            "model": self.model,
            "status": self.status,
            "body": self.body,
            "retry_after": self.retry_after,
            "request_id": self.request_id,
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HarnessError:
        """The error ``to_dict`` described, rebuilt as the class its ``type`` names.

        A name that is not an error of this module gives ``cls`` (``HarnessError`` itself
        when called on it); an ``AllModelsFailed`` gets each model's error back. The
        ``attempts`` count is not restored.
        """
        name = data.get("type")
        found = globals().get(name) if isinstance(name, str) and name in __all__ else None
        klass = found if isinstance(found, type) and issubclass(found, HarnessError) else cls
        if issubclass(klass, AllModelsFailed):
            nested = data.get("errors") or {}
            return AllModelsFailed(
                {
                    str(model): HarnessError.from_dict(error)
                    for model, error in nested.items()
                    if isinstance(error, Mapping)
                }
            )
        return klass(
            str(data.get("message", "")),
            provider=data.get("provider"),
            model=data.get("model"),
            status=data.get("status"),
            body=data.get("body"),
            retry_after=data.get("retry_after"),
            request_id=data.get("request_id"),
        )


class ConfigError(HarnessError, ValueError):
    """The harness is set up wrongly: unknown provider or alias, missing API key, bad config."""


class APIError(HarnessError):
    """Something went wrong talking to the provider.

    An error status, a timeout, a broken connection or an unreadable answer:
    ``except harness.APIError`` catches them all, as ``except openai.APIError`` does.
    """


class APIStatusError(APIError):
    """The provider answered with an HTTP error status."""


class BadRequestError(APIStatusError, ValueError):
    """The request is invalid (400, 413, 422), or the messages are malformed."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus ``max_tokens``) does not fit the model's context window."""


class ContentFilterError(BadRequestError):
    """The provider's safety system refused the prompt."""


class UnprocessableEntityError(BadRequestError):
    """The request is well-formed but its values are not accepted (422)."""


class AuthenticationError(APIStatusError):
    """The API key is missing, invalid or expired (401)."""


class PermissionDeniedError(APIStatusError):
    """The key may not use this model or region (403)."""


class BillingError(APIStatusError):
    """Out of credit or quota (402, or a quota-exhausted 429); waiting will not help."""


class NotFoundError(APIStatusError):
    """Unknown model, deployment or path (404)."""


class ConflictError(APIStatusError):
    """A conflicting concurrent request (409); retried."""

    retryable = True


class RateLimitError(APIStatusError):
    """Too many requests (429); retried, honouring ``retry_after`` (seconds)."""

    retryable = True


class InternalServerError(APIStatusError):
    """A server-side failure (500 and other 5xx); retried."""

    retryable = True


class ServiceUnavailableError(InternalServerError):
    """The provider is overloaded or starting (503, 529); retried."""


class BadGatewayError(ServiceUnavailableError):
    """A gateway in front of the model failed (502); retried."""


class TimeoutError(APIError, builtins.TimeoutError):
    """The call took longer than its timeout, or the server timed out (408, 504); retried."""

    retryable = True


class APIConnectionError(APIError):
    """The connection could not be made or broke before the answer was complete; retried."""

    retryable = True


class InvalidResponseError(APIError):
    """The provider's body could not be parsed into a response."""


class ResponseTooLargeError(InvalidResponseError):
    """The answer's body (or a stream's bytes) went past ``max_response_bytes``; not retried.

    ``limit`` is the limit in bytes. Raise it per model or per call when answers that large
    are expected.
    """

    limit: int | None = None


Timeout = TimeoutError
"""LiteLLM's name for ``TimeoutError``."""
ContentPolicyViolationError = ContentFilterError
"""LiteLLM's name for ``ContentFilterError``."""
APIResponseValidationError = InvalidResponseError
"""The OpenAI SDK's and LiteLLM's name for ``InvalidResponseError``."""


class ReplayMissError(HarnessError):
    """Replay mode was asked for an answer that was never recorded."""


class BudgetExceededError(HarnessError):
    """The cost cap (``--harness-max-cost``) is reached or the call's estimate exceeds it."""


class AllModelsFailed(HarnessError):
    """Every model of a race failed; ``errors`` maps each model to its own error, in order."""

    def __init__(self, errors: Mapping[str, BaseException] | Iterable[tuple[str, BaseException]]):
        self.errors: dict[str, BaseException] = dict(errors)
        lines = "; ".join(f"{m}: {type(e).__name__}: {e}" for m, e in self.errors.items())
        super().__init__(f"all {len(self.errors)} models failed — {lines}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, with each model's error."""
        out = super().to_dict()
        out["errors"] = {
            m: (
                e.to_dict()
                if isinstance(e, HarnessError)
                else {"type": type(e).__name__, "message": str(e)}
            )
            for m, e in self.errors.items()
        }
        return out


_STATUS_CLASSES: dict[int, type[HarnessError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: BillingError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: TimeoutError,
    409: ConflictError,
    413: BadRequestError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    499: APIConnectionError,
    500: InternalServerError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
    504: TimeoutError,
    529: ServiceUnavailableError,
}

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "maximum number of tokens",
)
# Only unambiguous signs that waiting will not help (Gemini's per-minute 429 also says
# "exceeded your current quota ... billing", so those words are not enough).
_QUOTA_HINTS = ("insufficient_quota", "spend limit", "credit balance", "per day", "perday")
_FILTER_HINTS = ("content_filter", "content filter", "content management policy", "safety")


# Error codes and types the providers send in a body, and the class each means. Used for
# errors that arrive without an error status (inside a 200 stream, or a 200 body).
_CODE_CLASSES: dict[str, type[HarnessError]] = {
    # OpenAI and the compatible servers (Groq, Mistral, DeepSeek, vLLM), Anthropic
    "invalid_request_error": BadRequestError,
    "invalid_request": BadRequestError,
    "bad_request": BadRequestError,
    "tool_use_failed": BadRequestError,  # Groq: the model's tool call did not parse
    "json_validate_failed": BadRequestError,  # Groq: JSON mode output did not validate
    "invalid_api_key": AuthenticationError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "permission_denied": PermissionDeniedError,
    "billing_error": BillingError,
    "insufficient_quota": BillingError,
    "not_found_error": NotFoundError,
    "model_not_found": NotFoundError,
    "request_too_large": BadRequestError,
    "context_length_exceeded": ContextWindowExceededError,
    "rate_limit_error": RateLimitError,
    "rate_limit_exceeded": RateLimitError,
    "api_error": InternalServerError,
    "server_error": InternalServerError,
    "internal_error": InternalServerError,
    "internal_server_error": InternalServerError,
    "overloaded_error": ServiceUnavailableError,
    "service_unavailable": ServiceUnavailableError,
    "service_unavailable_error": ServiceUnavailableError,
    "timeout_error": TimeoutError,
    # Google RPC statuses (Gemini)
    "INVALID_ARGUMENT": BadRequestError,
    "FAILED_PRECONDITION": BadRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "INTERNAL": InternalServerError,
    "UNAVAILABLE": ServiceUnavailableError,
    "DEADLINE_EXCEEDED": TimeoutError,
    "CANCELLED": APIConnectionError,
}


def code_class(*codes: object) -> type[HarnessError] | None:
    """The error class the first known provider error code or type among ``codes`` means.

    For errors that arrive without an error status (an ``error`` event inside a 200 stream,
    an error object in a 200 body): ``"invalid_request_error"``, Groq's
    ``"tool_use_failed"``, Anthropic's ``"overloaded_error"``, Google's
    ``"RESOURCE_EXHAUSTED"``, … A number in 400–599 (OpenRouter's ``code``) is taken as
    the HTTP status it names. ``None`` when none is known.
    """
    for code in codes:
        if type(code) is int and 400 <= code < 600:
            return _STATUS_CLASSES.get(code) or (
                InternalServerError if code >= 500 else BadRequestError
            )
        if isinstance(code, str) and code:
            found = _CODE_CLASSES.get(code) or _CODE_CLASSES.get(code.lower())
            if found is not None:
                return found
    return None


def error_from_status(
    status: int | None,
    message: str,
    *,
    code: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    body: bytes | str | None = None,
    retry_after: float | None = None,
    request_id: str | None = None,
    kind: str | None = None,
) -> HarnessError:
    """Map an HTTP error status (plus the provider's error code/message) to the error tree.

    ``code`` is the provider's machine-readable error code or type, when it has one; it and the
    message refine the class (context window, content filter, quota exhaustion). ``status``
    is ``None`` for an error sent without an error status (inside a 200 stream): the class
    then comes from ``code`` or ``kind`` (the error's type) by ``code_class``, an unknown
    one giving ``InternalServerError``, and the error's ``status`` stays ``None``.
    """
    hay = f"{code or ''} {kind or ''} {message}".lower()
    cls: type[HarnessError]
    if status is None:
        cls = code_class(code, kind) or InternalServerError
    elif status in _STATUS_CLASSES:
        cls = _STATUS_CLASSES[status]
    elif status >= 500:
        cls = InternalServerError
    elif status >= 400:
        cls = BadRequestError
    else:
        cls = InvalidResponseError
    if cls in (BadRequestError, UnprocessableEntityError) and status != 413:  # 413: bytes
        if any(h in hay for h in _CONTEXT_HINTS):
            cls = ContextWindowExceededError
        elif any(h in hay for h in _FILTER_HINTS):
            cls = ContentFilterError
    elif cls is RateLimitError and any(h in hay for h in _QUOTA_HINTS):
        cls = BillingError
    return cls(
        message or (f"HTTP {status}" if status else "the provider reported an error"),
        provider=provider,
        model=model,
        status=status,
        body=body,
        retry_after=retry_after,
        request_id=request_id,
    )


LITELLM_NAMES: Mapping[str, str] = {
    "AuthenticationError": "AuthenticationError",
    "PermissionDeniedError": "PermissionDeniedError",
    "NotFoundError": "NotFoundError",
    "BadRequestError": "BadRequestError",
    "UnprocessableEntityError": "UnprocessableEntityError",
    "ContextWindowExceededError": "ContextWindowExceededError",
    "ContentPolicyViolationError": "ContentFilterError",
    "RateLimitError": "RateLimitError",
    "Timeout": "TimeoutError",
    "APIConnectionError": "APIConnectionError",
    "InternalServerError": "InternalServerError",
    "ServiceUnavailableError": "ServiceUnavailableError",
    "BadGatewayError": "BadGatewayError",
    "APIError": "APIError",
    "APIResponseValidationError": "InvalidResponseError",
    "BudgetExceededError": "BudgetExceededError",
}
"""LiteLLM's exception names and the harness class each one is (same name, or an alias)."""


def error_class(name: str) -> type[HarnessError] | None:
    """The error class called ``name`` here or in LiteLLM (``"litellm.Timeout"`` works too).

    ``None`` when no class has that name.
    """
    name = name.rpartition(".")[2]
    found = globals().get(LITELLM_NAMES.get(name, name))
    if isinstance(found, type) and issubclass(found, HarnessError) and found is not AllModelsFailed:
        return found
    return None


def default_status(cls: type[HarnessError]) -> int | None:
    """The HTTP status an error of ``cls`` is usually sent with (``None``: not a status)."""
    for klass in cls.__mro__:
        for status, mapped in _STATUS_CLASSES.items():
            if mapped is klass and status not in (408, 413, 499, 504):
                return status
    return None
