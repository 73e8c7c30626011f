"""The service layer: the domains served and which one answers a request, knowing nothing of HTTP.

:class:`MatchingService` serves one :class:`~flipkd.service.domain.Domain` per bundle in
``settings.bundles`` (the shipped ATEC bundle when empty), named by the bundle's folder; the first is the
default. Students over the same base model share one copy of its weights
(:class:`~flipkd.models.base_models.BaseModels`); each domain has its own adapter, threshold, teacher,
batchers, cache and metrics, so batches never mix domains; with several domains their students share
``student_workers`` batch slots, so mixed traffic never runs more student batches at once than one
domain would. The default domain's teacher is
``settings.teacher`` or the bundle's own; every other domain's is its bundle's own; with
``settings.teacher_enabled`` off no domain has one.

The service is ready once every domain's student is warmed up; teachers attach when they can.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from flipkd.models.bundle import DEFAULT_BUNDLE, Bundle, bundle_folder, load_bundle
from flipkd.service.domain import Domain, DomainReadiness
from flipkd.service.engines import Engine, onnx_student_engine, teacher_engine
from flipkd.service.metrics import ServiceMetrics
from flipkd.service.settings import Settings
from flipkd.service.shadow import ShadowLog

if TYPE_CHECKING:
    import torch


def shared_students(dtype: torch.dtype | None = None) -> Callable[[Bundle], Engine]:
    """The student factory of one service: every student it builds reads the same loaded base weights,
    in ``dtype`` (None: :func:`~flipkd.models.precision.compute_dtype`'s choice). Imports torch."""
    from flipkd.models.base_models import BaseModels
    from flipkd.service.torch_engine import StudentEngine

    return partial(StudentEngine, bases=BaseModels(), dtype=dtype)


def student_factory(settings: Settings) -> Callable[[Bundle], Engine]:
    """The students ``settings`` ask for: torch over shared base weights, or onnxruntime graphs (no torch
    imported)."""
    if settings.student_runtime == "torch":
        from flipkd.models.precision import compute_dtype

        return shared_students(compute_dtype(settings.student_dtype))
    return partial(onnx_student_engine, threads=settings.torch_threads,
                   int8=settings.student_runtime == "onnx-int8")


@dataclass
class EngineFactories:
    """How engines are built; tests pass their own (for example a student that fails)."""

    student: Callable[[Bundle], Engine] = field(default_factory=shared_students)
    teacher: Callable[[Path, int], Engine] = teacher_engine


@dataclass(frozen=True)
class Readiness:
    """Ready when every domain's student is up; each domain's engines as :class:`DomainReadiness`."""

    ready: bool
    default_domain: str
    domains: dict[str, DomainReadiness]


class UnknownDomain(LookupError):
    """A request named a domain that is not loaded; the message names the loaded ones."""


class MatchingService:
    """The domains of ``settings``; bundles are read and verified at construction, engines come with
    :meth:`load`. ValueError when two bundles would serve under the same name."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        folders = [bundle_folder(name) for name in settings.bundles] or [DEFAULT_BUNDLE]
        names = [folder.name for folder in folders]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"bundles must have distinct folder names (their domain names); repeated: "
                             f"{', '.join(repeated)}")
        self._shadow_log = ShadowLog(settings.shadow_log) if settings.shadow_log is not None else None
        slots = asyncio.Semaphore(settings.student_workers) if len(folders) > 1 else None
        self.domains: dict[str, Domain] = {}
        for index, (name, folder) in enumerate(zip(names, folders, strict=True)):
            bundle = load_bundle(folder)
            teacher = bundle.teacher_source(settings.teacher if index == 0 else None) \
                if settings.teacher_enabled else None
            self.domains[name] = Domain(name, bundle, teacher, settings, metrics, self._shadow_log, slots)
            metrics.model_info.labels(
                domain=name, bundle=str(bundle.folder), base_model=bundle.base_model,
                encoder=json.dumps(bundle.manifest["encoder"], sort_keys=True),
                threshold=f"{bundle.threshold:.6f}", teacher=str(teacher or "")).set(1)
        self.default = self.domains[names[0]]

    def domain(self, name: str | None) -> Domain:
        """The domain called ``name`` (the default for None); UnknownDomain otherwise."""
        if name is None:
            return self.default
        domain = self.domains.get(name)
        if domain is None:
            loaded = ", ".join(repr(known) for known in self.domains)
            raise UnknownDomain(f"unknown domain {name!r}; loaded: {loaded}")
        return domain

    @property
    def ready(self) -> bool:
        return all(domain.serving for domain in self.domains.values())

    def readiness(self) -> Readiness:
        return Readiness(ready=self.ready, default_domain=self.default.name,
                         domains={name: domain.readiness() for name, domain in self.domains.items()})

    async def load(self, factories: EngineFactories) -> None:
        """Load every domain's engines side by side (:meth:`Domain.load`)."""
        await asyncio.gather(*(domain.load(factories.student, factories.teacher)
                               for domain in self.domains.values()))

    async def stop(self) -> None:
        """Finish every domain's accepted work, then write out the shadow log."""
        for domain in self.domains.values():
            await domain.stop()
        if self._shadow_log is not None:
            self._shadow_log.close()

    def record_queue_depths(self) -> None:
        for domain in self.domains.values():
            domain.record_queue_depths()
