# One image for web, worker and beat; docker-compose.yml changes only the command.
FROM python:3.11-slim

# Static files live in the image, outside the var volume, so an upgrade serves the new ones.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 VAR_DIR=/app/var STATIC_ROOT=/app/staticfiles
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The CPU build of PyTorch; a GPU worker image swaps this index for a CUDA one.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# llama.cpp for any x86-64 with AVX2, not only the CPU that built the image (see the Makefile).
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python==0.3.36
COPY pyproject.toml README.md ./
COPY config ./config
COPY annotation ./annotation
COPY rewards ./rewards
COPY templates ./templates
COPY static ./static
COPY manage.py ./
# collectstatic loads the settings, which need a key and hosts with DEBUG off: throwaway values for
# this one command, never part of the image's environment. The containers get theirs at run time.
RUN pip install . \
 && SECRET_KEY=collectstatic-at-build-time-only ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput --verbosity 0

RUN useradd --create-home app && mkdir -p /app/var && chown -R app /app/var
USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--control-socket", "/app/var/gunicorn.ctl"]
