"""The training side's ``flipkd`` subcommands: teachers, distillation, baselines, evaluation, bundles.

Registering them imports nothing heavy; each handler imports torch and the training code it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


def add_precision_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """``--fp32`` / ``--bf16`` force the number format ``what`` runs in; neither: ``"auto"`` (bf16 on a GPU
    or a CPU that multiplies it natively, else fp32: :func:`~flipkd.models.precision.compute_dtype`)."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--fp32", dest="precision", action="store_const", const="float32",
                        help=f"{what} in float32")
    choice.add_argument("--bf16", dest="precision", action="store_const", const="bfloat16",
                        help=f"{what} in bfloat16 even where the CPU only emulates it (many times slower)")
    parser.set_defaults(precision="auto")


def _train_teacher(args: argparse.Namespace) -> None:
    import torch

    from flipkd.models.precision import compute_dtype
    from flipkd.training.teacher_train import TeacherTrainConfig, train_teacher

    config = TeacherTrainConfig(
        data=args.data, base=args.base, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, max_length=args.max_length, train_limit=args.limit, seed=args.seed,
        bf16=compute_dtype(args.precision, "cpu") == torch.bfloat16,
        freeze_embeddings=not args.train_embeddings, folds=args.folds, fold=args.fold, mode=args.mode,
        lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
        lora_targets=tuple(args.lora_targets.split(",")), implied_pairs=args.implied_pairs)
    metrics = train_teacher(config, zero_shot=not args.no_zero_shot)
    summary = {key: metrics[key] for key in ("fine_tuned", "zero_shot", "train_seconds")}
    print(json.dumps(summary, indent=2))


def _export_teacher(args: argparse.Namespace) -> None:
    from flipkd.models.teacher_export import ExportCheckFailed, export_onnx
    from flipkd.training.onnx_export import check_export

    data = args.data or Path(json.loads((args.teacher / "metrics.json").read_text())["data"])
    export_onnx(args.teacher, args.out)
    report = check_export(args.teacher, args.out, data, args.int8)
    print(json.dumps(report, indent=2))
    if not report.get("int8_within_tolerance", True):
        raise ExportCheckFailed(f"int8 {report['split']} F1 {report['int8_f1']:.4f} is more than 0.5 point "
                                f"from fp32 {report['fp32_f1']:.4f}; only the fp32 graph was kept")


def _extract_teacher(args: argparse.Namespace) -> None:
    from flipkd.training.teacher_extract import extract_adapter_teacher

    metrics = extract_adapter_teacher(args.teacher, args.out, args.rank)
    print(json.dumps({key: metrics[key] for key in ("rank", "energy_kept", "adapter_bytes", "dev_cosine_gap",
                                                     "fine_tuned", "source_fine_tuned")}, indent=2))


def _distill(args: argparse.Namespace) -> None:
    from flipkd.models.precision import compute_dtype
    from flipkd.training.bundle_build import build_bundle
    from flipkd.training.distill_config import load_config

    config = load_config(args.config, args.set)
    manifest = build_bundle(config, args.out, compute_dtype(args.precision))
    if manifest is not None:
        print(json.dumps({"bundle": str(args.out), "threshold": manifest["threshold"],
                          "dev": manifest["metrics"]["dev"], "training": manifest["training"]}, indent=2))


def _evaluate(args: argparse.Namespace) -> None:
    from flipkd.training.evaluate import evaluate_bundle

    with contextlib.redirect_stdout(sys.stderr):
        result = evaluate_bundle(args.bundle, args.data, args.teacher)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


def _baseline(args: argparse.Namespace) -> None:
    from flipkd.models.precision import compute_dtype
    from flipkd.training.baseline_runs import run_baseline
    from flipkd.training.distill_config import load_config

    config = load_config(args.config, args.set)
    print(json.dumps(run_baseline(args.kind, config, args.out, compute_dtype(args.precision)), indent=2))


def _shard(value: str) -> tuple[int, int]:
    """``I/N`` with 0 <= I < N."""
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not I/N") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{value!r}: need 0 <= I < N")
    return index, count


def _paraphrase(args: argparse.Namespace) -> None:
    from flipkd.models.precision import compute_dtype
    from flipkd.training.paraphrase import ParaphraseConfig, write_paraphrases

    config = ParaphraseConfig(per_text=args.per_text, temperature=args.temperature,
                              max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                              style=args.style)
    print(json.dumps(write_paraphrases(args.data, args.base, args.out, config, compute_dtype(args.precision),
                                       args.limit, args.shard), indent=2))


def _teacher(args: argparse.Namespace) -> None:
    from flipkd.models.bundle import load_bundle
    from flipkd.training.teacher_rebuild import ensure_teacher

    print(json.dumps(ensure_teacher(load_bundle(args.bundle), args.out, int8=not args.no_int8), indent=2))


def _publish(args: argparse.Namespace) -> None:
    from flipkd.training.bundle_build import publish_bundle

    manifest = publish_bundle(args.bundle, args.out, bf16=args.bf16, teacher=args.teacher,
                              recalibrate=args.recalibrate)
    print(json.dumps({"bundle": str(args.out), "files": manifest["files"]}, indent=2))


def register(commands: argparse._SubParsersAction) -> None:
    """Add the training subcommands to the ``flipkd`` parser."""
    teacher = commands.add_parser("train-teacher", help="fine-tune the SLM teacher bi-encoder (CoSENT)")
    teacher.add_argument("--data", type=Path, required=True, help="dataset folder with train/dev/test.jsonl")
    teacher.add_argument("--base", required=True, help="default model name, local folder or hub id")
    teacher.add_argument("--out", type=Path, required=True)
    teacher.add_argument("--epochs", type=float, default=1.0)
    teacher.add_argument("--batch-size", type=int, default=32)
    teacher.add_argument("--lr", type=float, default=3e-5)
    teacher.add_argument("--max-length", type=int, default=64)
    teacher.add_argument("--limit", type=int, default=None, help="use only the first N training pairs")
    teacher.add_argument("--seed", type=int, default=13)
    teacher.add_argument("--no-zero-shot", action="store_true",
                         help="skip scoring the encoder before fine-tuning on dev/test (saves minutes)")
    add_precision_flags(teacher, "train (autocast)")
    teacher.add_argument("--train-embeddings", action="store_true", help="also train the token embeddings")
    teacher.add_argument("--folds", type=int, default=1,
                         help="cross-fitting: split the training pairs into this many folds (by first text)")
    teacher.add_argument("--fold", type=int, default=0, help="cross-fitting: the fold left out of training")
    teacher.add_argument("--implied-pairs", action="store_true",
                         help="also train on the pairs the training labels imply (training/implied_pairs.py)")
    teacher.add_argument("--mode", choices=["full", "adapter"], default="full",
                         help="full fine-tuning (a transformers folder) or LoRA on the pinned base (a PEFT "
                              "adapter a bundle can carry)")
    teacher.add_argument("--lora-rank", type=int, default=8, help="adapter mode: LoRA rank")
    teacher.add_argument("--lora-alpha", type=int, default=16, help="adapter mode: LoRA alpha")
    teacher.add_argument("--lora-targets", default="query,key,value,dense",
                         help="adapter mode: comma-separated linear layers of the encoder to adapt")
    teacher.set_defaults(run=_train_teacher)

    export = commands.add_parser("export-teacher", help="export a teacher to ONNX and check it")
    export.add_argument("--teacher", type=Path, required=True,
                        help="trained teacher folder (full or adapter)")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--int8", action="store_true", help="also write and check an int8 graph")
    export.add_argument("--data", type=Path, default=None,
                        help="dataset folder for the checks (default: the one the teacher was trained on)")
    export.set_defaults(run=_export_teacher)

    extract = commands.add_parser("extract-teacher",
                                  help="a fully fine-tuned teacher as a low-rank adapter teacher")
    extract.add_argument("--teacher", type=Path, required=True, help="fully fine-tuned teacher folder")
    extract.add_argument("--rank", type=int, default=32, help="rank of each linear layer's weight change")
    extract.add_argument("--out", type=Path, required=True, help="adapter teacher folder to write")
    extract.set_defaults(run=_extract_teacher)

    distill = commands.add_parser("distill", help="train a FlipKD student and write its bundle")
    distill.add_argument("--config", type=Path, required=True, help="YAML run configuration")
    distill.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    distill.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                         help="override a configuration value (repeatable)")
    add_precision_flags(distill, "hold and train the base model")
    distill.set_defaults(run=_distill)

    baseline = commands.add_parser("baseline", help="the LLM zero-shot, or fine-tuned the ordinary way (SFT)")
    baseline.add_argument("kind", choices=["zero-shot", "sft"])
    baseline.add_argument("--config", type=Path, required=True, help="run configuration (data, base, budget)")
    baseline.add_argument("--out", type=Path, required=True, help="folder for metrics.json and the adapter")
    baseline.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    add_precision_flags(baseline, "hold and train the LLM")
    baseline.set_defaults(run=_baseline)

    rewrite = commands.add_parser("paraphrase", help="LLM rewrites of the training texts, for a transfer set")
    rewrite.add_argument("--data", type=Path, required=True, help="dataset folder (train.jsonl is read)")
    rewrite.add_argument("--base", default="qwen2.5-coder-0.5b-instruct", help="an instruction-tuned LM")
    rewrite.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    rewrite.add_argument("--style", choices=("paraphrase", "related"), default="paraphrase",
                         help="paraphrase: the same question in other words; related: a different question "
                              "on the same subject")
    rewrite.add_argument("--per-text", type=int, default=1, help="rewrites sampled per training text")
    rewrite.add_argument("--temperature", type=float, default=0.8)
    rewrite.add_argument("--max-new-tokens", type=int, default=64, help="longer rewrites are dropped")
    rewrite.add_argument("--batch-size", type=int, default=32, help="training texts per generate call")
    rewrite.add_argument("--limit", type=int, default=None, help="only the first N distinct texts")
    rewrite.add_argument("--seed", type=int, default=13)
    rewrite.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                         help="only every N-th text from the I-th (0-based): split the work over processes")
    add_precision_flags(rewrite, "run the LM")
    rewrite.set_defaults(run=_paraphrase)

    evaluate = commands.add_parser("evaluate", help="student and teacher metrics of a bundle on a pair file")
    evaluate.add_argument("--bundle", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True, help="JSONL pair file")
    evaluate.add_argument("--teacher", type=Path, default=None,
                          help="teacher folder to compare with (exported, or an adapter teacher; "
                               "default: the bundle's own)")
    evaluate.add_argument("--json", action="store_true", help="one compact JSON object on stdout")
    evaluate.set_defaults(run=_evaluate)

    teacher_for = commands.add_parser("teacher", help="make a bundle's teacher available")
    teacher_for.add_argument("--bundle", type=Path, required=True)
    teacher_for.add_argument("--out", type=Path, required=True,
                             help="ONNX teacher folder to build when the bundle's own is not here")
    teacher_for.add_argument("--no-int8", action="store_true", help="skip the int8 graph")
    teacher_for.set_defaults(run=_teacher)

    publish = commands.add_parser("publish", help="copy a bundle (no checkpoint) with a fresh manifest")
    publish.add_argument("--bundle", type=Path, required=True)
    publish.add_argument("--out", type=Path, required=True)
    publish.add_argument("--bf16", action="store_true",
                         help="store the student adapter in bfloat16 and recalibrate the threshold on dev")
    publish.add_argument("--recalibrate", action="store_true",
                         help="calibrate the threshold on dev again (bagged best F1) without converting")
    publish.add_argument("--teacher", type=Path,
                         help="adapter teacher to carry in teacher/ (recorded as carried_teacher, not as the "
                              "teacher the student learned from)")
    publish.set_defaults(run=_publish)
