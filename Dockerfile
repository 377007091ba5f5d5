# The bot, ready to run offline: dependencies in their own layer, the embedding model fetched at build time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 bot
WORKDIR /app

# Dependencies first: this layer is rebuilt only when pyproject.toml changes, not on every code change.
COPY pyproject.toml README.md ./
RUN mkdir -p aisafety_bot bot service retrieval adapters \
    && touch aisafety_bot/__init__.py bot/__init__.py service/__init__.py retrieval/__init__.py adapters/__init__.py \
    && pip install . \
    && pip uninstall -y aisafety-bot

COPY aisafety_bot ./aisafety_bot
COPY bot ./bot
COPY service ./service
COPY retrieval ./retrieval
COPY adapters ./adapters
RUN pip install --no-deps .

USER 10001
ENV EMBEDDING_CACHE_DIR=/home/bot/models \
    QDRANT_PATH=/home/bot/data/qdrant \
    FEEDBACK_DB=/home/bot/data/feedback.sqlite3
RUN mkdir -p /home/bot/data \
    && python -c "from retrieval.embeddings import FastEmbedder; FastEmbedder(model_name='sentence-transformers/all-MiniLM-L6-v2', cache_dir='/home/bot/models').warm_up()"
# The model is in the image: never reach for the hub at run time.
ENV HF_HUB_OFFLINE=1

EXPOSE 8080 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["aisafety-bot", "healthcheck"]
ENTRYPOINT ["aisafety-bot"]
CMD ["run"]
