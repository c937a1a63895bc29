"""Blob transfers to an S3 blob store: presigned (straight to the bucket) against through the server.

    python bench/presign_bench.py [--blobs 3] [--mib 32] [--rounds 3]

Starts moto's S3 server and two `headwater server` processes on 127.0.0.1 (1 worker, SQLite),
their blobs in the same bucket under different prefixes: one with presigning on (the default for
s3://), one with HEADWATER_BLOB_PRESIGN=false. Each round logs `--blobs` new files of `--mib` MiB
through each (one client process, real HTTP), then downloads them, and times both. Prints the
median seconds, MiB/s and their ratio side by side, and what the servers' access logs show:
which requests carried the bytes. moto is a Python server on the same machine: the direct
path's speed here is moto's, not S3's; what carries over is where the bytes go.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

_REQUEST = re.compile(r'"(GET|PUT|POST|HEAD) (/api/v1/blobs\S*) HTTP/[\d.]+" (\d{3})')


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server(folder: Path, blobs: str, **env: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    folder.mkdir(parents=True)
    port = _free_port()
    log = folder / "server.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    environment.update({"HEADWATER_HOME": str(folder / "home"), **env})
    command = [sys.executable, "-m", "headwater.cli", "server", "--port", str(port), "--workers", "1"]
    command += ["--store", f"sqlite:///{folder / 'db'}", "--blobs", blobs]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2):
                return process, url, log
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start: {log.read_text()[-2000:]}")


def _blob_requests(log: Path, seen: int) -> tuple[dict[str, int], int]:
    text = log.read_text(errors="replace")
    counts: dict[str, int] = {}
    for method, path, status in _REQUEST.findall(text[seen:]):
        kind = "uploaded" if path.endswith("/uploaded") else "uploads" if path == "/api/v1/blobs/uploads" else "blob"
        key = f"{method} {kind} {status}"
        counts[key] = counts.get(key, 0) + 1
    return counts, len(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    import boto3

    import headwater as hw

    boto3.client("s3").create_bucket(Bucket="bench")
    root = Path(tempfile.mkdtemp(prefix="presign-bench-"))
    modes = {
        "presigned": _server(root / "direct", "s3://bench/direct"),
        "through the server": _server(root / "through", "s3://bench/through", HEADWATER_BLOB_PRESIGN="false"),
    }
    times: dict[str, dict[str, list[float]]] = {m: {"upload": [], "download": []} for m in modes}
    requests: dict[str, dict[str, int]] = {m: {} for m in modes}
    seen = dict.fromkeys(modes, 0)
    try:
        for n in range(args.rounds):
            for mode, (_, url, log) in modes.items():  # side by side, alternating
                _, seen[mode] = _blob_requests(log, 0)
                folder = root / f"{mode[:4]}-{n}"
                folder.mkdir()
                for i in range(args.blobs):
                    (folder / f"part-{i}.bin").write_bytes(os.urandom(args.mib << 20))
                client = hw.Client(uri=url, home=root / f"home-{uuid.uuid4().hex[:6]}")
                started = time.perf_counter()
                version = client.log_artifact("data", folder)
                times[mode]["upload"].append(time.perf_counter() - started)
                started = time.perf_counter()
                client.download(version, root / f"restored-{uuid.uuid4().hex[:6]}")
                times[mode]["download"].append(time.perf_counter() - started)
                client.close()
                counts, seen[mode] = _blob_requests(log, seen[mode])
                for key, count in counts.items():
                    requests[mode][key] = requests[mode].get(key, 0) + count
    finally:
        for process, _, _ in modes.values():
            process.terminate()
            process.wait(30)
        moto.stop()

    mib = args.blobs * args.mib
    load = os.getloadavg()
    print(f"{args.blobs} blobs x {args.mib} MiB, {args.rounds} rounds, medians; load average {load[0]:.2f}")
    print()
    print("| path | upload s | upload MiB/s | download s | download MiB/s |")
    print("|---|---|---|---|---|")
    medians = {m: {k: statistics.median(v) for k, v in t.items()} for m, t in times.items()}
    for mode, median in medians.items():
        print(
            f"| {mode} | {median['upload']:.2f} | {mib / median['upload']:.0f} | "
            f"{median['download']:.2f} | {mib / median['download']:.0f} |"
        )
    direct, through = medians["presigned"], medians["through the server"]
    print(
        f"| ratio presigned / through | {direct['upload'] / through['upload']:.2f} | | "
        f"{direct['download'] / through['download']:.2f} | |"
    )
    print()
    for mode, counts in requests.items():
        shown = ", ".join(f"{key}: {count}" for key, count in sorted(counts.items()))
        print(f"{mode}: blob requests the server saw over {args.rounds * args.blobs} blobs: {shown}")


if __name__ == "__main__":
    main()
