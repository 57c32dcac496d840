"""benchmarks/msda.py on CPU (``--device cpu``: the gather vs the reference), at the decoder's real shape, once."""

import re

from script_helpers import load_benchmark


def test_cpu_table_times_the_gather_and_reports_its_error(capsys):
    bench = load_benchmark("msda")
    argv = ["--device", "cpu", "--shapes", "decoder", "--batch", "1", "--dtypes", "fp32"]
    assert bench.main([*argv, "--iters", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "| reference ms | gather ms | speed-up |" in out and "| msda: " in out
    rows = re.findall(
        r"^\| decoder Lq=300 \| 1 \| float32 \| (fwd|fwd\+bwd) \| (.*) \|$", out, re.MULTILINE
    )
    assert [r[0] for r in rows] == ["fwd", "fwd+bwd"]
    for _, cells in rows:
        t_ref, t_gather, speed, err_ref, err_gather = (c.strip() for c in cells.split("|"))
        assert float(t_ref) > 0 and float(t_gather) > 0 and speed.endswith("x")
        assert float(err_gather) <= 1e-5 and float(err_ref) <= 1e-5
