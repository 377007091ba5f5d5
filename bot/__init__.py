"""The answer core: settings, prompts, the LLM client and `AnswerCore`."""
