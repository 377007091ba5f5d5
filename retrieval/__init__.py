"""Ingestion, chunking, embeddings and hybrid search over the article library."""
