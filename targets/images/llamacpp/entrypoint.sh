#!/bin/sh
# Start llama-server from environment variables so that a scenario can change --parallel,
# context and threads without a new image. Extra arguments are passed through.
# LLAMA_LOAD_MODE=none (default) reads the weights into the process's own memory, so the
# container's memory limit covers the whole model: too small a limit is an OOM kill at
# load time (a clear verdict), not page-cache thrashing that looks like a hang.
set -e
set -- --model "$LLAMA_MODEL" --alias "$LLAMA_ALIAS" \
    --host "$HOST" --port "$PORT" \
    --parallel "$LLAMA_PARALLEL" --ctx-size "$LLAMA_CTX" --threads "$LLAMA_THREADS" \
    --cont-batching --metrics --load-mode "$LLAMA_LOAD_MODE" "$@"
exec /usr/local/bin/llama-server "$@"
