"""Run the app under uvicorn. SIGTERM stops intake and waits for the requests in flight (uvicorn's
graceful shutdown, bounded by ``graceful_timeout_s``); the engines then drain their queues."""

from __future__ import annotations

import torch
import uvicorn

from service.app import EngineFactories, create_app
from service.settings import Settings


def build_server(settings: Settings, factories: EngineFactories | None = None,
                 graceful_timeout_s: float = 30.0) -> uvicorn.Server:
    torch.set_num_threads(settings.torch_threads)
    app = create_app(settings, factories)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=graceful_timeout_s, access_log=False)
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    build_server(settings).run()
