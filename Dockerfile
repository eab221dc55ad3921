# Image for the stream worker and the API (docker-compose.yml); the native stack needs none.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY eventpipe eventpipe
COPY streams streams
COPY sinks sinks
COPY api api
COPY schemas schemas
RUN pip install --no-cache-dir -e .
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["eventpipe"]
