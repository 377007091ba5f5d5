"""The only module that imports anthropic: a small streaming client with timeouts, retries and error mapping.

The SDK takes most of a second to import, so it is imported when the client is built, not with this
module: commands that never talk to the model start without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.errors import LLMError
from bot.llm import Message, Usage

if TYPE_CHECKING:
    import anthropic


def _map_error(exc: BaseException) -> LLMError:
    """Name the cause without echoing anything the server sent back (it may quote a key)."""
    import anthropic

    status = getattr(exc, "status_code", None)
    if isinstance(exc, anthropic.APITimeoutError):
        return LLMError("timeout", "the model did not answer in time")
    if isinstance(exc, anthropic.APIConnectionError):
        return LLMError("connection", "cannot reach the Anthropic API")
    if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return LLMError("auth", f"the API key was refused (HTTP {status}); check ANTHROPIC_API_KEY")
    if isinstance(exc, anthropic.NotFoundError):
        return LLMError("model-not-found", "unknown model; check ANTHROPIC_MODEL")
    if isinstance(exc, anthropic.RateLimitError):
        return LLMError("rate-limited", "HTTP 429 after retries")
    if isinstance(exc, anthropic.APIStatusError):
        if status == 529:
            return LLMError("overloaded", "HTTP 529 after retries")
        if status is not None and status >= 500:
            return LLMError("server-error", f"HTTP {status} after retries")
        if status == 200:
            return LLMError("stream-error", "the stream reported an error")
        return LLMError("bad-request", f"HTTP {status}")
    return LLMError("unexpected", type(exc).__name__)


@dataclass
class AnthropicLLM:
    """`AsyncAnthropic` with an explicit timeout and bounded retries; one client for the process."""

    api_key: str
    model: str
    base_url: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 2
    _client: anthropic.AsyncAnthropic | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Build the client (and its TLS context, ~0.1 s of CPU) at start-up, not inside the first
        # question's event-loop step.
        self._get_client()

    def _get_client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            import anthropic

            self._client = anthropic.AsyncAnthropic(
                api_key=self.api_key,
                base_url=self.base_url,
                timeout=anthropic.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s)),
                max_retries=self.max_retries,
            )
        return self._client

    async def stream(
        self, *, system: str, messages: Sequence[Message], max_tokens: int, usage: Usage | None = None
    ) -> AsyncIterator[str]:
        import anthropic

        try:
            async with self._get_client().messages.stream(
                model=self.model,
                system=system,
                max_tokens=max_tokens,
                messages=[{"role": m.role, "content": m.content} for m in messages],  # type: ignore[misc]
            ) as stream:
                async for event in stream:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        yield event.delta.text
                    elif event.type == "message_start" and usage is not None:
                        usage.input_tokens = event.message.usage.input_tokens or 0
                    elif event.type == "message_delta" and usage is not None:
                        usage.output_tokens = event.usage.output_tokens or 0
                    elif event.type == "message_stop":
                        return
            raise LLMError("stream-broken", "the stream ended before message_stop")
        except anthropic.AnthropicError as exc:
            raise _map_error(exc) from None
        except Exception as exc:
            # Outside the SDK's own errors: an event that is not JSON, bytes that are not UTF-8, the
            # connection closed mid-stream (the HTTP library's own error), an event of an unexpected shape.
            raise LLMError("stream-broken", type(exc).__name__) from None

    async def complete(self, *, system: str, messages: Sequence[Message], max_tokens: int) -> str:
        import anthropic

        try:
            response = await self._get_client().messages.create(
                model=self.model,
                system=system,
                max_tokens=max_tokens,
                messages=[{"role": m.role, "content": m.content} for m in messages],  # type: ignore[misc]
            )
        except anthropic.AnthropicError as exc:
            raise _map_error(exc) from None
        return "".join(block.text for block in response.content if block.type == "text")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
