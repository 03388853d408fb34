"""Messaging settings: the ``[messaging]`` table of the config file."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MessagingSettings(BaseModel):
    #: Encode/decode in-process messages exactly like the bus (turn off only for speed).
    serialize_inproc: bool = True
    #: ``tenantry serve`` runs the outbox relay in its own process.
    relay_in_process: bool = True
    poll_interval_s: float = Field(default=2.0, gt=0, le=600)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    #: Tenants delivered at once by one relay (each uses up to two pooled connections).
    relay_concurrency: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    retention_s: float = Field(default=3600.0, ge=0)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    #: Prefix of exchange and queue names (one per deployment; tests use a unique one).
    amqp_prefix: str = "tenantry"
    prefetch: int = Field(default=32, ge=1, le=10_000)
    consumer_attempts: int = Field(default=5, ge=1, le=100)
    #: A saga whose runner stopped beating this long ago is resumed by another process.
    saga_stale_s: float = Field(default=30.0, gt=0)
    #: This process (``serve``, ``worker``) resumes stale sagas: at start-up and then every
    #: ``saga_stale_s / 2``; claimed with SKIP LOCKED, so several processes may all do it.
    saga_resume: bool = True
