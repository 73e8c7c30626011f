"""The serving side's ``flipkd`` subcommands: ``serve``, ``healthcheck``, ``provision``,
``export-student`` and ``export-teachers``.

Registering them imports nothing heavy; ``healthcheck`` runs on the standard library and the settings
alone (the container runs it every 30 s with a 5 s timeout).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _provision(args: argparse.Namespace) -> None:
    from flipkd.models.provision import provision_all

    for name, folder in provision_all(args.models or None).items():
        print(f"{name}\t{folder}")


def _export_student(args: argparse.Namespace) -> None:
    """Export each bundle's student graph (fp32 and int8) into the model cache, as the service would on
    first use with FLIPKD_STUDENT_RUNTIME=onnx or onnx-int8; prints each folder and its export report."""
    import json

    from flipkd.models.bundle import bundle_folder, load_bundle
    from flipkd.models.onnx_student import ensure_student_onnx

    for name in args.bundle:
        folder = ensure_student_onnx(load_bundle(bundle_folder(name)))
        print(json.dumps({"bundle": name, "folder": str(folder),
                          **json.loads((folder / "export.json").read_text())}))


def _export_teachers(args: argparse.Namespace) -> None:
    """Export the teacher each bundle carries (``teacher/``) into the model cache, as the service would on
    first use (a server with a read-only cache cannot); prints each bundle's ONNX teacher folder, or null
    for a bundle that carries none."""
    import json

    from flipkd.models.bundle import bundle_folder, load_bundle
    from flipkd.models.teacher_cache import onnx_teacher_dir

    for name in args.bundle:
        carried = load_bundle(bundle_folder(name)).teacher_dir
        folder = None if carried is None else str(onnx_teacher_dir(carried))
        print(json.dumps({"bundle": name, "teacher": folder}))


def _serve(args: argparse.Namespace) -> None:
    from flipkd.service.server import serve
    from flipkd.service.settings import Settings

    overrides = {key: value for key, value in (("bundles", args.bundle), ("teacher", args.teacher),
                                               ("host", args.host), ("port", args.port)) if value is not None}
    serve(Settings(**overrides))


def _healthcheck(args: argparse.Namespace) -> None:
    """Exit 0 when the local server's /healthz answers 200 (the container's HEALTHCHECK)."""
    import urllib.error
    import urllib.request

    from flipkd.service.settings import Settings

    url = f"http://127.0.0.1:{Settings().port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = response.status
    except (urllib.error.URLError, TimeoutError) as error:
        raise RuntimeError(f"{url}: {error}") from None
    if status != 200:
        raise RuntimeError(f"{url}: HTTP {status}")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``provision``, ``serve``, ``healthcheck``, ``export-student`` and ``export-teachers`` to the
    ``flipkd`` parser."""
    provision = commands.add_parser("provision", help="bring the default base models into $FLIPKD_HOME")
    provision.add_argument("models", nargs="*", help="default model names (all when omitted)")
    provision.set_defaults(run=_provision)

    serve = commands.add_parser("serve", help="run the HTTP matching service (settings also from FLIPKD_*)")
    serve.add_argument("--bundle", action="append", default=None,
                       help="a domain to serve: a shipped bundle's name (atec, mqp) or a bundle folder; "
                            "repeat for several domains over one copy of the base model (the first is the "
                            "default domain)")
    serve.add_argument("--teacher", type=Path, default=None,
                       help="the default domain's teacher folder (ONNX or adapter)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(run=_serve)

    healthcheck = commands.add_parser("healthcheck", help="exit 0 when the local server is alive")
    healthcheck.add_argument("--timeout", type=float, default=3.0)
    healthcheck.set_defaults(run=_healthcheck)

    export = commands.add_parser("export-student", help="export bundles' students to ONNX (fp32, int8) into "
                                 "$FLIPKD_HOME for FLIPKD_STUDENT_RUNTIME=onnx / onnx-int8")
    export.add_argument("--bundle", action="append", required=True,
                        help="a shipped bundle's name (atec, mqp) or a bundle folder; repeatable")
    export.set_defaults(run=_export_student)

    teachers = commands.add_parser("export-teachers", help="export the teachers bundles carry to ONNX into "
                                   "$FLIPKD_HOME (for a server whose model cache is read-only)")
    teachers.add_argument("--bundle", action="append", required=True,
                          help="a shipped bundle's name (atec, mqp) or a bundle folder; repeatable")
    teachers.set_defaults(run=_export_teachers)
