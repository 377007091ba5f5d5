"""The composition root: the `aisafety-bot` commands, the wiring of settings, stores, models and
adapters, and the process runner. It stands above the adapters; nothing in `bot/`, `retrieval/` or
`adapters/` imports it."""
