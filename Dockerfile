FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 bot
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY retrieval ./retrieval
COPY adapters ./adapters
RUN pip install '.[discord,slack]'
USER bot
# Fetch the embedding model at build time so the container starts without the Hugging Face hub.
ENV EMBEDDING_CACHE_DIR=/home/bot/models
RUN python -c "from retrieval.embeddings import FastEmbedder; FastEmbedder(model_name='sentence-transformers/all-MiniLM-L6-v2', cache_dir='/home/bot/models').warm_up()"
ENTRYPOINT ["aisafety-bot"]
CMD ["run"]
