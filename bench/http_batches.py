"""A 1e6-row binary evaluation over HTTP (JSON and Arrow) vs the same report in-process.

Starts ``evalserve serve`` on a free loopback port (SQLite in a temp dir), posts the same batch
as JSON and as an Arrow IPC stream, and prints each request's time beside the in-process core
(make_batch + evaluate) and the overhead ratio. Target: Arrow overhead <= 20%.
Run: ``python -m bench.http_batches [n]``.
"""

from __future__ import annotations

import io
import sys
import tempfile
from functools import partial

import httpx2 as httpx
import numpy as np
import orjson
import pyarrow as pa

from app.core.batch import make_batch
from app.core.report import ReportOptions, evaluate
from bench._server import free_port, start_server
from bench._timing import best_of
from bench.binary_report import make_data

OPTIONS = {"task": "binary", "curves": ["roc", "pr"]}


def arrow_bytes(y: np.ndarray, p: np.ndarray) -> bytes:
    table = pa.table({"y_true": y, "y_score": p})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def in_process(y: np.ndarray, p: np.ndarray) -> dict:
    batch = make_batch("binary", y, p)
    return evaluate(batch, ReportOptions(curves=("roc", "pr")))


def post(client: httpx.Client, url: str, body: bytes, content_type: str) -> dict:
    res = client.post(url, content=body, headers={"content-type": content_type})
    res.raise_for_status()
    return dict(res.json())


def main(n: int) -> None:
    y, p = make_data(n)
    json_body = orjson.dumps(
        {**OPTIONS, "y_true": y, "y_score": p}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    arrow_body = arrow_bytes(y, p)
    t_core, ref = best_of(partial(in_process, y, p), repeat=3)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, tmp)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                t_json, via_json = best_of(
                    partial(post, client, "/v1/evaluations", json_body, "application/json")
                )
                t_arrow, via_arrow = best_of(
                    partial(
                        post,
                        client,
                        "/v1/evaluations?task=binary&curves=roc,pr",
                        arrow_body,
                        "application/vnd.apache.arrow.stream",
                    )
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for name in ("roc_auc", "f1", "log_loss", "ece"):
        assert via_json["metrics"][name] == via_arrow["metrics"][name] == ref["metrics"][name]
    print(
        f"rows {n:.0e}: body JSON {len(json_body) / 1e6:.1f} MB, Arrow "
        f"{len(arrow_body) / 1e6:.1f} MB"
    )
    print(f"  in-process core   {t_core:7.3f} s")
    print(f"  HTTP + JSON       {t_json:7.3f} s   overhead {t_json / t_core - 1:+.0%}")
    print(f"  HTTP + Arrow      {t_arrow:7.3f} s   overhead {t_arrow / t_core - 1:+.0%}")


if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 1_000_000)
