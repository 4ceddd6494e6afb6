"""The embedder the settings name: a local model (loaded on first use) or a remote endpoint."""

from __future__ import annotations

from indexer.config.settings import Settings
from indexer.errors import ConfigError

from .http_backend import HttpEmbedder
from .lazy import LazyEmbedder
from .protocol import Embedder


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedding_url:
        if not settings.embedding_model:
            raise ConfigError("embedding_url needs embedding_model: the model's name on that server")
        if settings.model_variant != "full":
            raise ConfigError(
                f"model_variant {settings.model_variant!r} applies to a local model, not to embedding_url's; "
                "leave one of them out"
            )
        return HttpEmbedder(
            settings.embedding_url, settings.embedding_model, batch_size=settings.embed_batch_size,
            max_tokens=settings.embedding_max_tokens,
        )  # fmt: skip
    if settings.embedding_model:
        raise ConfigError("embedding_model needs embedding_url (the server's address); for a local model set 'model'")
    return LazyEmbedder(
        settings.model, batch_size=settings.embed_batch_size, backend=settings.backend,
        query_threads=settings.query_threads, bulk_threads=settings.embed_threads, variant=settings.model_variant,
    )  # fmt: skip
