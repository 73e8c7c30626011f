"""The number format torch computes in: bf16 only where the hardware multiplies it natively."""

import pytest
import torch

from flipkd.main import build_parser
from flipkd.models.precision import compute_dtype, cpu_multiplies_bf16

AVX512_ONLY = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
WITH_BF16 = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\n"
WITH_AMX = "flags\t\t: fpu avx2 amx_tile amx_bf16 amx_int8\n"


@pytest.mark.parametrize(("cpuinfo", "native"), [(AVX512_ONLY, False), (WITH_BF16, True), (WITH_AMX, True),
                                                 ("processor : 0\n", False)])
def test_bf16_is_native_only_with_its_cpu_flags(tmp_path, cpuinfo, native):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: some CPU\n" + cpuinfo)
    assert cpu_multiplies_bf16(tmp_path / "cpuinfo") is native


def test_a_missing_cpuinfo_means_no_native_bf16(tmp_path):
    assert cpu_multiplies_bf16(tmp_path / "absent") is False


def test_auto_follows_the_hardware_and_an_explicit_choice_wins():
    assert compute_dtype("auto", "cuda:0") == torch.bfloat16
    assert compute_dtype("auto", "cpu") == (torch.bfloat16 if cpu_multiplies_bf16() else torch.float32)
    assert compute_dtype("float32", "cuda") == torch.float32
    assert compute_dtype("bfloat16", "cpu") == torch.bfloat16


@pytest.mark.parametrize("command", [["distill", "--config", "c.yaml", "--out", "o"],
                                     ["train-teacher", "--data", "d", "--base", "b", "--out", "o"],
                                     ["baseline", "sft", "--config", "c.yaml", "--out", "o"]])
def test_training_commands_follow_the_hardware_unless_a_format_is_forced(command):
    parser = build_parser()
    assert parser.parse_args(command).precision == "auto"
    assert parser.parse_args([*command, "--fp32"]).precision == "float32"
    assert parser.parse_args([*command, "--bf16"]).precision == "bfloat16"
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--fp32", "--bf16"])
