"""``segzero serve``: an OpenAI-compatible vLLM server for the reasoner, started with what Seg-Zero needs.

The model, its served name, the dtype, the context length, one image per prompt, and the image processor's pixel
bounds pinned to ``reasoner.image_size``² so the server keeps the square image the reasoner sends whole (coordinates
then come back in the frame the node scales from). It uses ``.venv-vllm`` (``make vllm``) when present, else a
``vllm`` on PATH (a GPU server's install). Arguments after ``--`` go to vLLM as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from segzero_ros.cli.common import LOG

REPO_VENV = Path(__file__).resolve().parents[3] / ".venv-vllm"  # where `make vllm` puts it in a checkout
READY_TIMEOUT_S = 900.0  # the first start on a slow CPU loads and profiles the model for minutes
STOP_TIMEOUT_S = 20.0
CPU_KV_CACHE_GB = "1"  # vLLM's CPU build reserves this much for its KV cache (VLLM_CPU_KVCACHE_SPACE)


def vllm_launcher(venv: Path | None = None) -> list[str]:
    """How to start vLLM's server: the venv's Python (``make vllm``), else ``vllm`` on PATH; [] when neither."""
    venv = venv if venv is not None else Path(os.environ.get("SEGZERO_VLLM_VENV", REPO_VENV))
    python = venv / "bin" / "python"
    if python.is_file():
        return [str(python), "-m", "vllm.entrypoints.openai.api_server"]
    vllm = shutil.which("vllm")
    return [vllm, "serve"] if vllm else []


def server_arguments(
    model: str, served_name: str, image_size: int, host: str, port: int, dtype: str, max_model_len: int
) -> list[str]:
    """vLLM's arguments for Seg-Zero (after the launcher; ``vllm serve`` takes the model as ``--model`` too)."""
    pixels = image_size * image_size
    return [
        "--model",
        model,
        "--served-model-name",
        served_name,
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        "--limit-mm-per-prompt",
        json.dumps({"image": 1}),
        "--mm-processor-kwargs",
        json.dumps({"min_pixels": pixels, "max_pixels": pixels}),
        "--host",
        host,
        "--port",
        str(port),
    ]


def node_parameters(endpoint: str, served_name: str, model: str, image_size: int) -> str:
    """The node parameters that use this server, as ``--ros-args`` takes them (the image size the server keeps)."""
    return (
        f"-p reasoner.backend:=openai -p reasoner.endpoint:={endpoint} -p reasoner.api_model:={served_name} "
        f"-p reasoner.model:={model} -p reasoner.image_size:={image_size}"
    )


def ready(endpoint: str, timeout_s: float = 2.0) -> bool:
    """Whether the server answers ``GET /models``."""
    from segzero_ros.reasoner.health import models_unanswered

    return not models_unanswered(endpoint, timeout_s)


def stop_server(server: subprocess.Popen) -> int:
    """SIGINT to the server's process group (vLLM's own clean shutdown), SIGKILL after ``STOP_TIMEOUT_S``."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    return server.returncode


def cmd_serve(args: argparse.Namespace) -> int:
    """Start vLLM, say where it answers and how to point the node at it, serve until Ctrl-C or SIGTERM."""
    launcher = vllm_launcher()
    if not launcher:
        print(
            f"segzero serve: no vLLM: `make vllm` creates {REPO_VENV.name} here, or install vLLM on this machine "
            "(pip install vllm, GPU servers) so that `vllm` is on PATH",
            file=sys.stderr,
        )
        return 3
    from segzero_ros.params import BY_NAME

    model, served_name, image_size = args.model, args.served_model_name, args.image_size
    if args.tiny:
        from segzero_ros.tiny import TINY_IMAGE_SIZE, tiny_reasoner_path

        model, served_name = str(tiny_reasoner_path(fitted=True)), served_name or "segzero-tiny"
        image_size = image_size or TINY_IMAGE_SIZE  # the tiny preset's reasoner.image_size
    served_name = served_name or model
    image_size = image_size or BY_NAME["reasoner.image_size"].default
    dtype = args.dtype or ("float32" if args.tiny or launcher[0].endswith("python") else "auto")
    endpoint = f"http://{args.host}:{args.port}/v1"
    command = launcher + server_arguments(
        model, served_name, image_size, args.host, args.port, dtype, args.max_model_len
    )
    command += list(getattr(args, "passthrough", []))
    env = {**os.environ}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GB)
    LOG.info("starting vLLM: %s", " ".join(command))
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready(endpoint):
            if server.poll() is not None:
                print(f"segzero serve: vLLM exited ({server.returncode}) before it was ready", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"segzero serve: vLLM not ready after {READY_TIMEOUT_S:.0f} s", file=sys.stderr)
                stop_server(server)
                return 1
            time.sleep(1.0)
        print(f"segzero serve: ready at {endpoint} (model {served_name!r})", flush=True)
        print(f"node parameters: {node_parameters(endpoint, served_name, model, image_size)}", flush=True)
        code = server.wait()
        print(f"segzero serve: vLLM exited ({code})", file=sys.stderr)
        return 1
    finally:
        stop_server(server)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero serve`` and its options, on the ``segzero`` parser."""
    p = sub.add_parser(
        "serve",
        help="start an OpenAI-compatible vLLM server for the reasoner (arguments after -- go to vLLM)",
    )
    from segzero_ros.params import BY_NAME

    p.add_argument("--model", default=BY_NAME["reasoner.model"].default, help="Hugging Face id or local folder")
    p.add_argument("--tiny", action="store_true", help="serve the tiny offline reasoner (tests, demos)")
    p.add_argument("--served-model-name", default="", help="the name clients ask for (default: the model)")
    p.add_argument(
        "--image-size",
        type=int,
        default=0,
        help="reasoner.image_size of the nodes it serves, kept whole by the server (default: the parameter's "
        f"default, {BY_NAME['reasoner.image_size'].default}; with --tiny the tiny preset's)",
    )
    p.add_argument("--dtype", default="", help="vLLM's --dtype (default: float32 on CPU, else auto)")
    p.add_argument("--max-model-len", type=int, default=4096, help="context length (the image takes ~900 tokens)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
